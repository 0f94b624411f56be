//! Code layout of the shipped agent (cross/README.md, "Code layout"): when cross/build-agents
//! names a symbol-ordering file for the target being built, the functions a running agent uses
//! are linked next to each other, so the few pages it keeps mapped hold little else. The file
//! lists mangled names, which differ per target, hence one variable per target triple.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let var = format!(
        "PICKET_AGENT_SYMBOL_ORDER_{}",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={var}");
    let Some(path) = std::env::var_os(&var).filter(|p| !p.is_empty()) else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    println!("cargo:rerun-if-changed={}", path.display());
    // lld's flags: names it does not find (a file older than the code) are skipped quietly.
    println!(
        "cargo:rustc-link-arg-bin=picket-agent=--symbol-ordering-file={}",
        path.display()
    );
    println!("cargo:rustc-link-arg-bin=picket-agent=--no-warn-symbol-ordering");
}
