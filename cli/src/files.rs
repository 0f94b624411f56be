//! The inputs of `create -f` and `delete -f`: files, directories (`-r` descends), or `-` for
//! stdin; YAML multi-document files and JSON streams, parsed by proto-spec's wrapped parser.

use std::io::Read;
use std::path::{Path, PathBuf};

use proto_spec::wrapped::Wrapped;

use crate::Error;

/// Every resource of the inputs, in order: files in the order given, a directory's files
/// sorted by name (`.json`, `.yaml`, `.yml` only).
pub fn read_inputs(paths: &[PathBuf], recursive: bool) -> Result<Vec<Wrapped>, Error> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Io("stdin".into(), e))?;
            out.extend(parse_named("stdin", &text)?);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| Error::Io(p.display().to_string(), e))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, recursive, &mut files)?;
            for f in files {
                out.extend(read_file(&f)?);
            }
        } else {
            out.extend(read_file(p)?);
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |e| Error::Io(dir.display().to_string(), e);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                collect_dir(&path, recursive, out)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<Wrapped>, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
    parse_named(&path.display().to_string(), &text)
}

fn parse_named(name: &str, text: &str) -> Result<Vec<Wrapped>, Error> {
    proto_spec::wrapped::parse(text).map_err(|e| Error::Input(format!("{name}: {e}")))
}
