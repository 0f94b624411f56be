//! picketctl's saved configuration, sensuctl's two files in one directory
//! (`$XDG_CONFIG_HOME/picket/picketctl`, else `~/.config/picket/picketctl`):
//! `cluster` (API URL, TLS settings, tokens or API key) and `profile` (format, namespace,
//! username). Both are JSON with sensuctl's key names and are written with mode 0600, since
//! `cluster` holds credentials.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_TIMEOUT_SECS: u64 = 15;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cluster {
    #[serde(rename = "api-url", skip_serializing_if = "String::is_empty")]
    pub api_url: String,
    #[serde(rename = "trusted-ca-file", skip_serializing_if = "String::is_empty")]
    pub trusted_ca_file: String,
    #[serde(rename = "insecure-skip-tls-verify")]
    pub insecure_skip_tls_verify: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    #[serde(rename = "APIKey", skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub format: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
}

/// The directory picketctl keeps its files in, from the environment.
pub fn default_dir() -> Result<PathBuf, Error> {
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("picket").join("picketctl"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Config("neither XDG_CONFIG_HOME nor HOME is set; use --config-dir".into())
        })?;
    Ok(PathBuf::from(home)
        .join(".config")
        .join("picket")
        .join("picketctl"))
}

/// The two files of one configuration directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn load_cluster(&self) -> Result<Cluster, Error> {
        read_json(&self.dir.join("cluster"))
    }

    pub fn load_profile(&self) -> Result<Profile, Error> {
        read_json(&self.dir.join("profile"))
    }

    pub fn save_cluster(&self, c: &Cluster) -> Result<(), Error> {
        write_private(&self.dir, "cluster", c)
    }

    pub fn save_profile(&self, p: &Profile) -> Result<(), Error> {
        write_private(&self.dir, "profile", p)
    }
}

/// A missing file is an empty configuration; a damaged one is an error naming it.
fn read_json<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Config(format!(
                "{} is not valid configuration ({e}); run picketctl configure",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::Io(path.display().to_string(), e)),
    }
}

/// Write through a temporary file created 0600 and renamed over the old one, so a crash never
/// leaves half a file and the credentials are never readable by others, not even briefly.
fn write_private<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::Io(dir.display().to_string(), e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |e| Error::Io(tmp.display().to_string(), e);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let mut json = serde_json::to_vec_pretty(value).expect("configuration encodes as JSON");
    json.push(b'\n');
    f.write_all(&json).map_err(io)?;
    f.sync_all().map_err(io)?;
    // A file that existed with wider permissions (written by hand) is narrowed too.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::Io(path.display().to_string(), e))
}
