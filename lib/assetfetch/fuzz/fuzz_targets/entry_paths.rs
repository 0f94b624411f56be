//! The unpacker's path rules: whatever the bytes, an accepted entry path or link target is
//! relative, made only of plain components, and so stays under the asset directory.
#![no_main]

use std::path::{Component, Path};

use assetfetch::unpack::{entry_path, link_target};
use libfuzzer_sys::fuzz_target;

fn plain(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

fuzz_target!(|data: &[u8]| {
    // First line: the entry's name; the rest: a link target.
    let (name, target) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(Some(p)) = entry_path(name) {
        assert!(plain(&p), "entry path {p:?} from {name:?}");
        if let Ok(t) = link_target(&p, target) {
            assert!(plain(&t), "link target {t:?} from {target:?}");
        }
    }
});
