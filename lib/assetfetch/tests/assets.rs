//! The asset cache against real servers (HTTP and HTTPS on loopback) and real archives.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assetfetch::testing::{FileServer, RawEntry, TestCa, gzip, raw_tar, sha512_hex, tar_gz};
use assetfetch::unpack::{self, Limits, UnpackError};
use assetfetch::{AssetCache, AssetSource, CacheConfig, Error, FetchConfig};

fn source(server: &FileServer, path: &str, body: &[u8]) -> AssetSource {
    AssetSource {
        name: format!("asset{path}"),
        url: server.url(path),
        sha512: sha512_hex(body),
        headers: Vec::new(),
    }
}

fn open(dir: &Path) -> Arc<AssetCache> {
    Arc::new(AssetCache::open(CacheConfig::new(dir)).expect("open cache"))
}

/// Everything in the cache directory except the (empty) work directory.
fn cache_contents(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != assetfetch::cache::TMP_DIR)
        .collect();
    let tmp = dir.join(assetfetch::cache::TMP_DIR);
    for e in std::fs::read_dir(&tmp).unwrap() {
        out.push(format!(
            "{}/{}",
            assetfetch::cache::TMP_DIR,
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    out.sort();
    out
}

fn plugin_archive() -> Vec<u8> {
    tar_gz(&[
        (
            "bin/hello",
            b"#!/bin/sh\necho hello from the asset\n",
            0o755,
        ),
        ("lib/libx.so", b"not really a library", 0o644),
    ])
}

#[tokio::test]
async fn installs_unpacks_and_then_serves_from_the_cache() {
    let server = FileServer::start();
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let src = source(&server, "/a.tar.gz", &body);

    let dir = cache.install(&src).await.expect("install");
    assert_eq!(dir, tmp.path().join(&src.sha512));
    let script = dir.join("bin/hello");
    let out = std::process::Command::new(&script).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the asset\n"
    );
    assert_eq!(cache_contents(tmp.path()), vec![src.sha512.clone()]);

    // Cached: no second request, even from a cache reopened after a restart.
    assert_eq!(cache.install(&src).await.unwrap(), dir);
    let reopened = open(tmp.path());
    assert_eq!(reopened.install(&src).await.unwrap(), dir);
    assert_eq!(server.hits("/a.tar.gz"), 1);
}

#[tokio::test]
async fn the_digest_is_compared_case_insensitively_and_headers_are_sent() {
    let server = FileServer::start();
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let mut src = source(&server, "/a.tar.gz", &body);
    src.sha512 = src.sha512.to_ascii_uppercase();
    src.headers = vec![("Authorization".into(), "Bearer s3cret".into())];
    cache.install(&src).await.expect("install");
    let headers = server.request_headers("/a.tar.gz");
    assert!(headers[0].contains(&("authorization".to_string(), "Bearer s3cret".to_string())));
}

#[tokio::test]
async fn a_tampered_tarball_is_refused_and_nothing_is_left() {
    let server = FileServer::start();
    let genuine = plugin_archive();
    let tampered = tar_gz(&[("bin/hello", b"#!/bin/sh\nrm -rf /\n", 0o755)]);
    server.serve("/a.tar.gz", tampered);
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let src = source(&server, "/a.tar.gz", &genuine);

    let err = cache.install(&src).await.unwrap_err();
    assert!(matches!(err, Error::Sha512Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha512 mismatch"), "{err}");
    assert!(
        cache_contents(tmp.path()).is_empty(),
        "{:?}",
        cache_contents(tmp.path())
    );

    // Not remembered as failed: once the genuine archive is served it installs.
    server.serve("/a.tar.gz", genuine);
    cache.install(&src).await.expect("genuine archive");
}

#[tokio::test]
async fn an_interrupted_download_leaves_no_trace_and_succeeds_on_retry() {
    let server = FileServer::start();
    // Incompressible, so the cut lands inside the archive's data.
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let body = tar_gz(&[("bin/big", &big, 0o755)]);
    server.serve_cut("/big.tar.gz", body.clone(), body.len() / 2);
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let src = source(&server, "/big.tar.gz", &body);

    let err = cache.install(&src).await.unwrap_err();
    assert!(matches!(err, Error::Fetch { .. }), "{err}");
    assert!(
        cache_contents(tmp.path()).is_empty(),
        "{:?}",
        cache_contents(tmp.path())
    );

    server.serve("/big.tar.gz", body.clone());
    let dir = cache.install(&src).await.expect("retry");
    assert_eq!(std::fs::read(dir.join("bin/big")).unwrap(), big);
    assert_eq!(server.hits("/big.tar.gz"), 2);
}

#[tokio::test]
async fn leftovers_of_a_crash_are_cleared_when_the_cache_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join(assetfetch::cache::TMP_DIR);
    std::fs::create_dir_all(work.join("0123456789abcdef-1-0/bin")).unwrap();
    std::fs::write(work.join("0123456789abcdef-1-0.download"), b"half").unwrap();
    let _cache = open(tmp.path());
    assert!(cache_contents(tmp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_of_one_asset_download_it_once() {
    let server = FileServer::start();
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    server.hold();
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let src = source(&server, "/a.tar.gz", &body);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (cache, src) = (cache.clone(), src.clone());
        tasks.spawn(async move { cache.install(&src).await });
    }
    // All eight are in: one downloading (held by the server), seven waiting for it.
    for _ in 0..500 {
        if cache.waiting(&src.sha512) == 7 && server.hits("/a.tar.gz") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.waiting(&src.sha512), 7);
    server.release();
    let results: Vec<_> = tasks.join_all().await;
    let expected = tmp.path().join(&src.sha512);
    for r in results {
        assert_eq!(r.expect("install"), expected);
    }
    assert_eq!(server.hits("/a.tar.gz"), 1);
    assert_eq!(cache.downloads(), 1);
}

#[tokio::test]
async fn over_the_rate_limit_a_fetch_fails_with_a_clear_error() {
    let server = FileServer::start();
    let (a, b) = (plugin_archive(), tar_gz(&[("bin/other", b"x", 0o755)]));
    server.serve("/a.tar.gz", a.clone());
    server.serve("/b.tar.gz", b.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = Arc::new(
        AssetCache::open(CacheConfig {
            // One token, refilled once an hour: the second download is over the limit.
            rate_per_second: 1.0 / 3600.0,
            burst: 1,
            ..CacheConfig::new(tmp.path())
        })
        .unwrap(),
    );
    let src_a = source(&server, "/a.tar.gz", &a);
    cache.install(&src_a).await.expect("first fetch");
    let err = cache
        .install(&source(&server, "/b.tar.gz", &b))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(server.hits("/b.tar.gz"), 0);
    // Cache hits need no token.
    cache.install(&src_a).await.expect("cached");
}

#[tokio::test]
async fn https_with_a_trusted_ca_file_and_refused_without_it() {
    let ca = TestCa::new();
    let server = FileServer::start_tls(&ca);
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    ca.write_ca(&ca_file);
    let src = source(&server, "/a.tar.gz", &body);
    assert!(src.url.starts_with("https://"));

    let untrusted = open(&tmp.path().join("untrusted"));
    let err = untrusted.install(&src).await.unwrap_err();
    assert!(matches!(err, Error::Fetch { .. }), "{err}");

    let trusted = Arc::new(
        AssetCache::open(CacheConfig {
            fetch: FetchConfig {
                trusted_ca_file: Some(ca_file),
                ..FetchConfig::default()
            },
            ..CacheConfig::new(tmp.path().join("trusted"))
        })
        .unwrap(),
    );
    let dir = trusted.install(&src).await.expect("install over https");
    assert!(dir.join("bin/hello").is_file());
}

#[tokio::test]
async fn downloads_past_the_size_limit_are_refused() {
    let server = FileServer::start();
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = Arc::new(
        AssetCache::open(CacheConfig {
            fetch: FetchConfig {
                max_download_bytes: 64,
                ..FetchConfig::default()
            },
            ..CacheConfig::new(tmp.path())
        })
        .unwrap(),
    );
    let err = cache
        .install(&source(&server, "/a.tar.gz", &body))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(cache_contents(tmp.path()).is_empty());
}

#[tokio::test]
async fn a_hostile_archive_served_for_real_is_refused_and_leaves_nothing() {
    let server = FileServer::start();
    let body = gzip(&raw_tar(&[RawEntry::file("../escaped", b"x")]));
    server.serve("/evil.tar.gz", body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = open(&cache_dir);
    let err = cache
        .install(&source(&server, "/evil.tar.gz", &body))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unpack {
                source: UnpackError::ParentDir { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(cache_contents(&cache_dir).is_empty());
    assert!(!tmp.path().join("escaped").exists());
    assert!(!cache_dir.join("escaped").exists());
}

// === the unpacker on hostile archives ===

/// Unpack into `<tmp>/box/dest` and return the result and whatever exists in `<tmp>` other
/// than `box/dest`'s own tree: anything there escaped.
fn unpack_boxed(
    archive: &[u8],
    limits: &Limits,
) -> (Result<unpack::Unpacked, UnpackError>, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let boxdir = tmp.path().join("box");
    let dest = boxdir.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let result = unpack::unpack(archive, &dest, limits);
    let mut escaped = Vec::new();
    for dir in [tmp.path(), boxdir.as_path()] {
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name != "box" && name != "dest" {
                escaped.push(name);
            }
        }
    }
    (result, escaped)
}

#[test]
fn every_hostile_archive_is_refused() {
    use RawEntry as E;
    let limits = Limits::default();
    type Check = fn(&UnpackError) -> bool;
    let cases: Vec<(&str, Vec<E>, Check)> = vec![
        (
            "absolute path",
            vec![E::file("/tmp/picket-evil", b"x")],
            |e| matches!(e, UnpackError::AbsolutePath { .. }),
        ),
        (
            "parent dir",
            vec![E::file("bin/../../escaped", b"x")],
            |e| matches!(e, UnpackError::ParentDir { .. }),
        ),
        ("bare ..", vec![E::dir("..")], |e| {
            matches!(e, UnpackError::ParentDir { .. })
        }),
        (
            "absolute symlink",
            vec![E::symlink("bin/sh", "/bin/sh")],
            |e| matches!(e, UnpackError::LinkOutside { .. }),
        ),
        (
            "relative symlink out",
            vec![E::symlink("lib/x", "../../escaped")],
            |e| matches!(e, UnpackError::LinkOutside { .. }),
        ),
        (
            "symlink out through another link",
            vec![E::symlink("here", "."), E::symlink("up", "here/..")],
            |e| matches!(e, UnpackError::LinkOutside { .. }),
        ),
        (
            "file written through a symlink",
            vec![E::symlink("l", "."), E::file("l/x", b"x")],
            |e| matches!(e, UnpackError::ThroughLink { .. }),
        ),
        (
            "symlink replaced, then written through",
            vec![E::dir("d"), E::symlink("s", "d"), E::file("s/f", b"x")],
            |e| matches!(e, UnpackError::ThroughLink { .. }),
        ),
        ("hard link out", vec![E::hardlink("x", "../escaped")], |e| {
            matches!(e, UnpackError::LinkOutside { .. })
        }),
        (
            "hard link absolute",
            vec![E::hardlink("x", "/etc/passwd")],
            |e| matches!(e, UnpackError::LinkOutside { .. }),
        ),
        (
            "hard link to a symlink",
            vec![E::symlink("s", "."), E::hardlink("h", "s")],
            |e| matches!(e, UnpackError::BadHardLink { .. }),
        ),
        (
            "hard link to nothing",
            vec![E::hardlink("h", "missing")],
            |e| matches!(e, UnpackError::BadHardLink { .. }),
        ),
        ("char device", vec![E::special("dev/null", b'3')], |e| {
            matches!(e, UnpackError::SpecialFile { .. })
        }),
        ("block device", vec![E::special("dev/sda", b'4')], |e| {
            matches!(e, UnpackError::SpecialFile { .. })
        }),
        ("fifo", vec![E::special("pipe", b'6')], |e| {
            matches!(e, UnpackError::SpecialFile { .. })
        }),
    ];
    for (what, entries, check) in cases {
        let archive = raw_tar(&entries);
        for (form, bytes) in [("tar", archive.clone()), ("tar.gz", gzip(&archive))] {
            let (result, escaped) = unpack_boxed(&bytes, &limits);
            let err = result.expect_err(&format!("{what} ({form}) was accepted"));
            assert!(check(&err), "{what} ({form}): unexpected error {err}");
            assert!(
                escaped.is_empty(),
                "{what} ({form}): wrote outside: {escaped:?}"
            );
        }
    }
}

#[test]
fn size_and_count_bounds_are_enforced() {
    let limits = Limits {
        max_bytes: 1000,
        max_entries: 5,
    };
    let many: Vec<RawEntry> = (0..6)
        .map(|i| RawEntry::file(&format!("f{i}"), b"x"))
        .collect();
    let (r, _) = unpack_boxed(&raw_tar(&many), &limits);
    assert_eq!(r.unwrap_err(), UnpackError::TooManyEntries { limit: 5 });

    let big = [
        RawEntry::file("a", &[1u8; 600]),
        RawEntry::file("b", &[2u8; 600]),
    ];
    let (r, _) = unpack_boxed(&gzip(&raw_tar(&big)), &limits);
    assert_eq!(r.unwrap_err(), UnpackError::TooLarge { limit: 1000 });

    // A header that declares more than the limit is refused before anything is read.
    let liar = [RawEntry {
        size: Some(1 << 40),
        ..RawEntry::file("huge", b"")
    }];
    let (r, _) = unpack_boxed(&raw_tar(&liar), &limits);
    assert_eq!(r.unwrap_err(), UnpackError::TooLarge { limit: 1000 });
}

#[test]
fn not_an_archive_is_refused() {
    let (r, _) = unpack_boxed(b"#!/bin/sh\necho not a tarball\n", &Limits::default());
    assert_eq!(r.unwrap_err(), UnpackError::UnknownFormat);
    let (r, _) = unpack_boxed(&gzip(b"plain text, gzipped"), &Limits::default());
    assert_eq!(r.unwrap_err(), UnpackError::UnknownFormat);
}

#[test]
fn links_inside_and_modes_are_kept_but_setuid_is_not() {
    use std::os::unix::fs::PermissionsExt;
    let entries = [
        RawEntry::dir("./"),
        RawEntry::dir("lib"),
        RawEntry {
            mode: 0o4755,
            ..RawEntry::file("lib/libfoo.so.1", b"lib")
        },
        RawEntry::symlink("lib/libfoo.so", "libfoo.so.1"),
        RawEntry::symlink("bin/foo", "../lib/libfoo.so.1"),
        RawEntry::hardlink("lib/copy", "lib/libfoo.so.1"),
        RawEntry {
            mode: 0o644,
            ..RawEntry::file("README", b"read me")
        },
    ];
    let tmp = tempfile::tempdir().unwrap();
    let done = unpack::unpack(&raw_tar(&entries)[..], tmp.path(), &Limits::default()).unwrap();
    assert_eq!(done.entries, 7);
    assert_eq!(
        std::fs::read(tmp.path().join("lib/libfoo.so")).unwrap(),
        b"lib"
    );
    assert_eq!(std::fs::read(tmp.path().join("bin/foo")).unwrap(), b"lib");
    assert_eq!(std::fs::read(tmp.path().join("lib/copy")).unwrap(), b"lib");
    let mode = |p: &str| {
        std::fs::metadata(tmp.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("lib/libfoo.so.1"), 0o755);
    assert_eq!(mode("README"), 0o644);
}

#[tokio::test]
async fn packaging_build_asset_makes_an_archive_the_cache_installs() {
    use std::os::unix::fs::PermissionsExt;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/build-asset");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("lib/libtool.so.1"), b"lib").unwrap();
    std::os::unix::fs::symlink("libtool.so.1", src.join("lib/libtool.so")).unwrap();
    let out = tmp.path().join("tool.tar.gz");
    let run = std::process::Command::new("bash")
        .arg(&script)
        .arg(&src)
        .arg(&out)
        .args(["tool", "https://assets.example/tool.tar.gz"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = String::from_utf8(run.stdout).unwrap().trim().to_string();
    let body = std::fs::read(&out).unwrap();
    assert_eq!(printed, sha512_hex(&body));
    let yaml = std::fs::read_to_string(tmp.path().join("tool.tar.gz.yml")).unwrap();
    assert!(yaml.contains(&format!("sha512: {printed}")), "{yaml}");

    let server = FileServer::start();
    server.serve("/tool.tar.gz", body.clone());
    let cache = open(&tmp.path().join("cache"));
    let dir = cache
        .install(&source(&server, "/tool.tar.gz", &body))
        .await
        .unwrap();
    let ran = std::process::Command::new(dir.join("bin/tool"))
        .output()
        .unwrap();
    assert_eq!(ran.stdout, b"tool\n");
    assert_eq!(std::fs::read(dir.join("lib/libtool.so")).unwrap(), b"lib");

    // A link leaving the directory is refused by the script, as the agent would refuse it.
    std::os::unix::fs::symlink("../../etc/passwd", src.join("bin/escape")).unwrap();
    let run = std::process::Command::new("bash")
        .arg(&script)
        .arg(&src)
        .arg(tmp.path().join("bad.tar.gz"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&run.stderr).contains("points outside"));
}

#[tokio::test]
async fn redirects_are_followed_up_to_a_bound() {
    let server = FileServer::start();
    let body = plugin_archive();
    server.serve("/a.tar.gz", body.clone());
    server.redirect("/moved.tar.gz", "/a.tar.gz");
    server.redirect("/loop.tar.gz", "/loop.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path());
    let mut src = source(&server, "/moved.tar.gz", &body);
    cache.install(&src).await.expect("one redirect is followed");

    src.url = server.url("/loop.tar.gz");
    src.sha512 = sha512_hex(b"another asset");
    let err = cache.install(&src).await.unwrap_err();
    assert!(matches!(err, Error::Fetch { .. }), "{err}");
    assert!(err.to_string().contains("redirect"), "{err}");
    // The default bound: the first request and five redirects.
    assert_eq!(server.hits("/loop.tar.gz"), 6);
    assert_eq!(cache_contents(tmp.path()), vec![sha512_hex(&body)]);
}
