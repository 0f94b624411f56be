//! Validation rules shared by every resource (sensu-compat section 0).

/// A resource failed validation; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Resource names (checks, handlers, entities, hooks, filters, mutators, entity_class,
/// proxy_entity_name): `\A[\w\.\-\:]+\z`, ASCII word characters as Go's RE2 defines `\w`.
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "name cannot be empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(is_word(*c) || matches!(c, '.' | '-' | ':')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "name {name:?} contains {bad:?}; only letters, digits, '_', '.', '-' and ':' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Usernames: `\A[a-z0-9\_\.\-]+\z`.
pub fn validate_username(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "username cannot be empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "username {name:?} contains {bad:?}; only lower-case letters, digits, '_', '.' and '-' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Subscriptions: `\A[\w\.\-]+(\:?[\w\.\-]+)?\z`, i.e. at most one colon, not first or last.
pub fn validate_subscription(field: &str, sub: &str) -> Result<(), ValidationError> {
    let ok_part = |p: &str| !p.is_empty() && p.chars().all(|c| is_word(c) || c == '.' || c == '-');
    let valid = match sub.split_once(':') {
        None => ok_part(sub),
        Some((a, b)) => ok_part(a) && ok_part(b),
    };
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "subscription {sub:?} is invalid; use letters, digits, '_', '.', '-' and at most one ':' inside"
            ),
        ))
    }
}
