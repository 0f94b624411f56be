//! The packages of `packaging/build-packages` (scripts/test builds them into `dist/` first;
//! `PICKET_DIST` points elsewhere).
//!
//! - the amd64 .debs install with dpkg on this machine (as root: CI runs as root): binaries,
//!   conffiles, the `picket` system user, state and cache directories owned by it, units that
//!   pass `systemd-analyze verify`, no service enabled unless `PICKET_START_SERVICES=1`;
//!   removal keeps configuration and data, purge removes them and the user;
//! - the backend packages carry the first-party handlers (`/usr/bin/picket-handler-*`);
//! - the picketctl .deb installs the command and its bash/zsh completions (no user, no
//!   service, no configuration) and removes without a trace;
//! - the ARM agent .debs carry the matching cross-built binary;
//! - the .rpms list the right files, owners and config flags, and carry the maintainer scripts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn dist() -> PathBuf {
    std::env::var_os("PICKET_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"))
}

fn artefact(name: &str) -> PathBuf {
    let path = dist().join(name);
    assert!(
        path.exists(),
        "{} is missing: run packaging/build-packages first (scripts/test does)",
        path.display()
    );
    path
}

/// Run a command; panic with its output unless it succeeds. Returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout + &stderr
}

fn sh(script: &str) -> String {
    run(Command::new("sh").args(["-c", script]))
}

fn id_of(what: &str, name: &str) -> Option<u32> {
    let out = Command::new("getent").args([what, name]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2).and_then(|s| s.trim().parse().ok())
}

/// Owner uid, gid and permission bits of a path.
fn owner_mode(path: &str) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
        .unwrap_or(false)
}

/// Purges the packages when the test ends, also when it fails half-way.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "picket-agent", "picket-backend"])
            .output();
    }
}

/// The first-party handlers the picket-backend packages install in /usr/bin.
const HANDLERS: [&str; 5] = [
    "picket-handler-influxdb",
    "picket-handler-slack",
    "picket-handler-webhook",
    "picket-handler-pagerduty",
    "picket-handler-email",
];

const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

#[test]
fn debs_install_remove_and_purge_cleanly() {
    let agent_deb = artefact(&format!("picket-agent_{VERSION}-1_amd64.deb"));
    let backend_deb = artefact(&format!("picket-backend_{VERSION}-1_amd64.deb"));
    assert_eq!(
        uid(),
        0,
        "this test installs packages with dpkg: run it as root (CI does)"
    );
    assert!(
        !installed("picket-agent")
            && !installed("picket-backend")
            && id_of("passwd", "picket").is_none(),
        "Picket packages or a `picket` user already exist on this machine; purge them \
         (dpkg --purge picket-agent picket-backend; userdel picket) to run this test"
    );
    let _purge = Purge;

    // Install: the backend plainly, the agent asking for its service to be enabled.
    run(Command::new("dpkg").arg("-i").arg(&backend_deb));
    run(Command::new("dpkg")
        .arg("-i")
        .arg(&agent_deb)
        .env("PICKET_START_SERVICES", "1"));

    // The user and group.
    let uid = id_of("passwd", "picket").expect("a picket user");
    let gid = id_of("group", "picket").expect("a picket group");
    assert!(uid < 1000, "a system user: uid {uid}");
    let pw = sh("getent passwd picket");
    assert!(
        pw.trim_end()
            .ends_with(":/var/lib/picket:/usr/sbin/nologin"),
        "{pw}"
    );

    // Binaries.
    for bin in ["picket-agent", "picket-backend"] {
        let path = format!("/usr/bin/{bin}");
        assert_eq!(owner_mode(&path), (0, 0, 0o755), "{path}");
        let v = run(Command::new(&path).arg("--version"));
        assert!(v.contains(VERSION), "{path} --version: {v}");
    }
    assert!(
        sh("file -b /usr/bin/picket-agent").contains("static-pie linked"),
        "the .deb ships the static agent"
    );
    // The handlers run: an unknown flag is a usage error (exit 2), as their README says.
    for h in HANDLERS {
        let path = format!("/usr/bin/{h}");
        assert_eq!(owner_mode(&path), (0, 0, 0o755), "{path}");
        let code = Command::new(&path)
            .arg("--no-such-flag")
            .output()
            .unwrap()
            .status
            .code();
        assert_eq!(code, Some(2), "{path} --no-such-flag");
    }

    // Configuration: conffiles, readable by the picket group only.
    for (pkg, conf) in [
        ("picket-agent", "/etc/picket/agent.yml"),
        ("picket-backend", "/etc/picket/backend.yml"),
    ] {
        assert_eq!(owner_mode(conf), (0, gid, 0o640), "{conf}");
        let conffiles = sh(&format!("dpkg-query -W -f='${{Conffiles}}' {pkg}"));
        assert!(conffiles.contains(conf), "{pkg} conffiles: {conffiles}");
    }
    assert_eq!(
        std::fs::read_to_string("/etc/picket/backend.yml").unwrap(),
        include_str!("../../packaging/backend.yml")
    );

    // State and cache directories.
    for dir in [
        "/var/lib/picket/picket-backend",
        "/var/cache/picket/picket-backend",
        "/var/cache/picket/picket-agent",
    ] {
        assert_eq!(owner_mode(dir), (uid, gid, 0o750), "{dir}");
    }
    for dir in ["/var/lib/picket", "/var/cache/picket", "/etc/picket"] {
        assert_eq!(owner_mode(dir), (0, 0, 0o755), "{dir}");
    }

    // Units: installed, verified, and enabled only where asked.
    for unit in ["picket-agent.service", "picket-backend.service"] {
        let path = format!("/lib/systemd/system/{unit}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../systemd")
                    .join(unit)
            )
            .unwrap(),
            "{path}"
        );
        run(Command::new("systemd-analyze").args(["verify", &path]));
        let text = std::fs::read_to_string(&path).unwrap();
        for directive in [
            "User=picket",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "ReadWritePaths=/var/",
            "Restart=on-failure",
            "LimitNOFILE=",
        ] {
            assert!(text.contains(directive), "{unit} lacks {directive}");
        }
    }
    assert!(
        Path::new(WANTS).join("picket-agent.service").exists(),
        "PICKET_START_SERVICES=1 enables the agent"
    );
    assert!(
        !Path::new(WANTS).join("picket-backend.service").exists(),
        "the backend is not enabled without PICKET_START_SERVICES=1"
    );

    // Data the backend would have written: removal must keep it, purge must not.
    std::fs::write(
        "/var/lib/picket/picket-backend/probe",
        b"state written by a test",
    )
    .unwrap();
    run(Command::new("chown").args(["picket:picket", "/var/lib/picket/picket-backend/probe"]));

    // Reinstalling (an upgrade to the same version) keeps an edited configuration.
    sh("echo '# edited' >> /etc/picket/agent.yml");
    run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&agent_deb));
    assert!(
        std::fs::read_to_string("/etc/picket/agent.yml")
            .unwrap()
            .contains("# edited")
    );

    // Remove: binaries and units go, configuration, data and user stay.
    run(Command::new("dpkg").args(["-r", "picket-agent", "picket-backend"]));
    for gone in [
        "/usr/bin/picket-agent",
        "/usr/bin/picket-backend",
        "/usr/bin/picket-handler-email",
        "/lib/systemd/system/picket-agent.service",
        "/lib/systemd/system/picket-backend.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after remove");
    }
    assert!(
        !Path::new(WANTS).join("picket-agent.service").exists(),
        "remove disables the agent"
    );
    assert!(Path::new("/etc/picket/agent.yml").exists());
    assert!(Path::new("/var/lib/picket/picket-backend/probe").exists());
    assert!(id_of("passwd", "picket").is_some());

    // Purge: nothing left.
    run(Command::new("dpkg").args(["--purge", "picket-agent", "picket-backend"]));
    for gone in ["/etc/picket", "/var/lib/picket", "/var/cache/picket"] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    assert!(
        id_of("passwd", "picket").is_none(),
        "purge removes the user"
    );
    assert!(
        id_of("group", "picket").is_none(),
        "purge removes the group"
    );
    assert!(!installed("picket-agent") && !installed("picket-backend"));
}

/// Removes picketctl when the test ends, also when it fails half-way.
struct PurgeCtl;
impl Drop for PurgeCtl {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "picketctl"]).output();
    }
}

/// The picketctl package's files, sorted.
const CTL_FILES: [&str; 4] = [
    "/usr/bin/picketctl",
    "/usr/share/bash-completion/completions/picketctl",
    "/usr/share/doc/picketctl/copyright",
    "/usr/share/zsh/vendor-completions/_picketctl",
];

#[test]
fn picketctl_deb_installs_with_completions_and_removes_cleanly() {
    let deb = artefact(&format!("picketctl_{VERSION}-1_amd64.deb"));
    // Contents: exactly the command, its completions and the copyright file.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mut files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|f| f.trim_start_matches('.'))
        .collect();
    files.sort_unstable();
    assert_eq!(files, CTL_FILES, "{listing}");
    let control = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for absent in ["postinst", "prerm", "postrm", "conffiles", "Depends:"] {
        assert!(
            !control.contains(absent),
            "picketctl has no {absent}:\n{control}"
        );
    }

    assert_eq!(
        uid(),
        0,
        "this test installs packages with dpkg: run it as root (CI does)"
    );
    assert!(
        !installed("picketctl"),
        "picketctl is already installed; dpkg --purge picketctl to run this test"
    );
    let _purge = PurgeCtl;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(owner_mode("/usr/bin/picketctl"), (0, 0, 0o755));
    let v = run(Command::new("/usr/bin/picketctl").arg("--version"));
    assert_eq!(v.trim(), format!("picketctl {VERSION}"));
    // The installed completions are the binary's own, and bash parses them.
    let bash = "/usr/share/bash-completion/completions/picketctl";
    let zsh = "/usr/share/zsh/vendor-completions/_picketctl";
    assert_eq!(owner_mode(bash).2, 0o644);
    assert_eq!(owner_mode(zsh).2, 0o644);
    assert_eq!(
        std::fs::read_to_string(bash).unwrap(),
        run(Command::new("/usr/bin/picketctl").args(["completion", "bash"]))
    );
    assert!(
        std::fs::read_to_string(zsh)
            .unwrap()
            .starts_with("#compdef picketctl")
    );
    run(Command::new("bash").args(["-n", bash]));
    // A shell that sources the completion completes `picketctl ass` to `asset`.
    let script = format!(
        ". {bash}; COMP_WORDS=(picketctl ass); COMP_CWORD=1; COMP_LINE='picketctl ass'; \
         COMP_POINT=${{#COMP_LINE}}; _picketctl picketctl ass picketctl; echo \"${{COMPREPLY[@]}}\""
    );
    let words = run(Command::new("bash").args(["-c", &script]));
    assert_eq!(words.trim(), "asset", "completion of `picketctl ass`");

    run(Command::new("dpkg").args(["-r", "picketctl"]));
    for gone in CTL_FILES {
        assert!(!Path::new(gone).exists(), "{gone} left after remove");
    }
    assert!(!installed("picketctl"));
}

fn uid() -> u32 {
    sh("id -u").trim().parse().unwrap()
}

#[test]
fn arm_agent_debs_carry_the_cross_built_agents() {
    for (arch, triple) in [
        ("arm64", "aarch64-unknown-linux-musl"),
        ("armhf", "armv7-unknown-linux-gnueabihf"),
    ] {
        let deb = artefact(&format!("picket-agent_{VERSION}-1_{arch}.deb"));
        let info = run(Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg("Architecture"));
        assert_eq!(info.trim(), arch);
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()));
        let packaged = std::fs::read(dir.path().join("usr/bin/picket-agent")).unwrap();
        let built = std::fs::read(artefact(&format!("picket-agent-{triple}"))).unwrap();
        assert!(
            packaged == built,
            "{arch}: the .deb's binary is not dist/picket-agent-{triple}"
        );
    }
    let depends = run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(artefact(&format!("picket-agent_{VERSION}-1_armhf.deb")))
        .arg("Depends"));
    assert!(
        depends.contains("libc6 (>= 2."),
        "armhf links glibc: {depends}"
    );
}

#[test]
fn rpms_list_files_owners_config_and_scripts() {
    for (pkg, arch) in [
        ("picket-agent", "x86_64"),
        ("picket-agent", "aarch64"),
        ("picket-agent", "armv7hl"),
        ("picket-backend", "x86_64"),
    ] {
        let rpm = artefact(&format!("{pkg}-{VERSION}-1.{arch}.rpm"));
        let q = |args: &[&str]| run(Command::new("rpm").arg("-qp").args(args).arg(&rpm));
        assert_eq!(q(&["--qf", "%{ARCH}"]).trim(), arch);
        let short = pkg.trim_start_matches("picket-");
        let list = q(&["-l"]);
        for f in [
            format!("/usr/bin/{pkg}"),
            format!("/etc/picket/{short}.yml"),
            format!("/usr/lib/systemd/system/{pkg}.service"),
            format!("/var/cache/picket/{pkg}"),
        ] {
            assert!(
                list.lines().any(|l| l == f),
                "{pkg}.{arch} lacks {f}:\n{list}"
            );
        }
        assert_eq!(
            q(&["--configfiles"]).trim(),
            format!("/etc/picket/{short}.yml")
        );
        // Owners and modes: --dump gives path size mtime digest mode owner group ...
        let dump = q(&["--dump"]);
        let entry = |path: &str| -> Vec<String> {
            dump.lines()
                .find(|l| l.split(' ').next() == Some(path))
                .unwrap_or_else(|| panic!("{path} not in {pkg}.{arch}:\n{dump}"))
                .split(' ')
                .map(String::from)
                .collect()
        };
        let conf = entry(&format!("/etc/picket/{short}.yml"));
        assert_eq!(
            (&conf[4][..], &conf[5][..], &conf[6][..]),
            ("0100640", "root", "picket")
        );
        let cache = entry(&format!("/var/cache/picket/{pkg}"));
        assert_eq!(
            (&cache[4][..], &cache[5][..], &cache[6][..]),
            ("040750", "picket", "picket")
        );
        let scripts = q(&["--scripts"]);
        for needle in [
            "preinstall scriptlet",
            "useradd --system",
            "postinstall scriptlet",
            "PICKET_START_SERVICES",
            "systemctl enable --now",
            "preuninstall scriptlet",
            "systemctl disable --now",
            "postuninstall scriptlet",
        ] {
            assert!(
                scripts.contains(needle),
                "{pkg}.{arch} scripts lack {needle}:\n{scripts}"
            );
        }
    }
    let backend = run(Command::new("rpm")
        .args(["-qpl"])
        .arg(artefact(&format!("picket-backend-{VERSION}-1.x86_64.rpm"))));
    assert!(
        backend
            .lines()
            .any(|l| l == "/var/lib/picket/picket-backend")
    );
    for h in HANDLERS {
        let path = format!("/usr/bin/{h}");
        assert!(backend.lines().any(|l| l == path), "no {path}:\n{backend}");
    }

    // picketctl: its files, no configuration, no scripts.
    let rpm = artefact(&format!("picketctl-{VERSION}-1.x86_64.rpm"));
    let q = |args: &[&str]| run(Command::new("rpm").arg("-qp").args(args).arg(&rpm));
    assert_eq!(q(&["--qf", "%{ARCH}"]).trim(), "x86_64");
    let list = q(&["-l"]);
    let mut listed: Vec<&str> = list.lines().collect();
    listed.sort_unstable();
    assert_eq!(listed, CTL_FILES, "{list}");
    assert_eq!(q(&["--configfiles"]).trim(), "");
    assert_eq!(q(&["--scripts"]).trim(), "");
    let dump = q(&["--dump"]);
    let bin = dump
        .lines()
        .find(|l| l.starts_with("/usr/bin/picketctl "))
        .unwrap_or_else(|| panic!("no picketctl in:\n{dump}"));
    let fields: Vec<&str> = bin.split(' ').collect();
    assert_eq!(
        (fields[4], fields[5], fields[6]),
        ("0100755", "root", "root")
    );
}
