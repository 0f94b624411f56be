//! Whole archives: whatever the bytes (tar or gzip), unpacking never writes outside the
//! destination and never leaves a symbolic link that resolves outside it.
#![no_main]

use assetfetch::unpack::{Limits, unpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = tempdir();
    let dest = tmp.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 256,
    };
    let ok = unpack(data, &dest, &limits).is_ok();
    let names: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["dest"], "something was written beside the destination");
    if ok {
        let root = std::fs::canonicalize(&dest).unwrap();
        walk(&dest, &root);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
});

fn walk(dir: &std::path::Path, root: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            if let Ok(r) = std::fs::canonicalize(&p) {
                assert!(r.starts_with(root), "{p:?} resolves to {r:?}");
            }
        } else if m.is_dir() {
            walk(&p, root);
        }
    }
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!(
        "assetfetch-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}
