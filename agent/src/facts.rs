//! System facts reported in the agent entity's `system` (sensu-compat 1.3).
//!
//! Parsers (os-release, cpuinfo, cgroup, DMI strings, ...) are pure functions over text so they
//! are unit-tested with fixtures; [`collect`] is the only function that reads the machine.
//! Names follow gopsutil, which Sensu uses, so dashboards and filters written for Sensu facts
//! (`platform_family == "debian"`, `vm_system == "kvm"`) keep working.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use proto_spec::v2::{Network, NetworkInterface, System};

/// How often the running agent refreshes its facts (Sensu: 20 s).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(20);

/// Gather every fact from the running system. Blocking (file reads, `getifaddrs`): call it from
/// `spawn_blocking` in async code.
pub fn collect() -> System {
    let os_release = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let (platform, platform_family, mut platform_version) = platform_info(&os_release);
    // gopsutil reports the full point release where the distribution has a file for it.
    let detailed = match platform_family.as_str() {
        "debian" if platform == "debian" => {
            read("/etc/debian_version").and_then(|t| debian_version(&t))
        }
        "rhel" => read("/etc/redhat-release").and_then(|t| redhat_release_version(&t)),
        _ => None,
    };
    if let Some(v) = detailed {
        platform_version = v;
    }
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let arch = goarch(std::env::consts::ARCH, cfg!(target_endian = "little")).to_string();
    let arm_version = if arch == "arm" {
        parse_arm_version(&cpuinfo).unwrap_or(0)
    } else {
        0
    };
    let (vm_system, vm_role) = detect_virtualization(&VirtEvidence::read(cpuinfo));
    System {
        hostname: read_hostname().unwrap_or_default(),
        os: std::env::consts::OS.to_string(),
        platform,
        platform_family,
        platform_version,
        network: network(),
        arch,
        arm_version,
        libc_type: detect_libc(&loader_names()).to_string(),
        vm_system,
        vm_role,
        // Cloud provider detection arrives with a later release.
        cloud_provider: String::new(),
        float_type: String::new(),
        // Sensu's OSS agent reports no processes.
        processes: None,
    }
}

/// The kernel's hostname (no libc call: `unsafe` is forbidden in this workspace).
pub fn read_hostname() -> Option<String> {
    read("/proc/sys/kernel/hostname")
        .or_else(|| read("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok()
}

// === os-release ===

/// `KEY=value` pairs of an os-release file, quotes removed.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), unquoted.replace("\\\"", "\""))
        })
        .collect()
}

/// `(platform, platform_family, platform_version)` from os-release, named as gopsutil does.
pub fn platform_info(os_release: &BTreeMap<String, String>) -> (String, String, String) {
    let id = os_release
        .get("ID")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let platform = match id.as_str() {
        "rhel" => "redhat",
        "ol" => "oracle",
        "amzn" => "amazon",
        "opensuse" => "opensuse",
        other => other,
    }
    .to_string();
    let family = platform_family(&platform)
        .or_else(|| {
            os_release
                .get("ID_LIKE")
                .into_iter()
                .flat_map(|like| like.split_whitespace())
                .find_map(|l| platform_family(&l.to_ascii_lowercase()))
        })
        .unwrap_or_default()
        .to_string();
    let version = os_release.get("VERSION_ID").cloned().unwrap_or_default();
    (platform, family, version)
}

/// gopsutil's platform → family table.
pub fn platform_family(platform: &str) -> Option<&'static str> {
    Some(match platform {
        "debian" | "ubuntu" | "linuxmint" | "raspbian" => "debian",
        "fedora" => "fedora",
        "oracle"
        | "centos"
        | "redhat"
        | "rhel"
        | "scientific"
        | "enterpriseenterprise"
        | "amazon"
        | "xenserver"
        | "cloudlinux"
        | "ibm_powerkvm"
        | "rocky"
        | "almalinux" => "rhel",
        "suse"
        | "opensuse"
        | "opensuse-leap"
        | "opensuse-tumbleweed"
        | "opensuse-tumbleweed-kubic"
        | "sles"
        | "sled"
        | "caasp" => "suse",
        "gentoo" => "gentoo",
        "slackware" => "slackware",
        "arch" | "archarm" | "manjaro" => "arch",
        "exherbo" => "exherbo",
        "alpine" => "alpine",
        "coreos" => "coreos",
        "solus" => "solus",
        _ => return None,
    })
}

/// `/etc/debian_version`: `12.5` (a release) or `trixie/sid` (testing, ignored).
pub fn debian_version(text: &str) -> Option<String> {
    let v = text.trim();
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// `/etc/redhat-release`: `CentOS Linux release 7.9.2009 (Core)` → `7.9.2009`.
pub fn redhat_release_version(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "release")?;
    words.next().map(String::from)
}

// === architecture ===

/// Go's GOARCH name for a Rust `target_arch`.
pub fn goarch(rust_arch: &str, little_endian: bool) -> &str {
    match (rust_arch, little_endian) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "386",
        ("aarch64", true) => "arm64",
        ("aarch64", false) => "arm64be",
        ("arm", _) => "arm",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("powerpc", _) => "ppc",
        ("mips", true) => "mipsle",
        ("mips", false) => "mips",
        ("mips64", true) => "mips64le",
        ("mips64", false) => "mips64",
        ("loongarch64", _) => "loong64",
        (other, _) => other,
    }
}

/// ARM architecture version from `/proc/cpuinfo` (`CPU architecture: 7`). A 64-bit kernel
/// reports 8 to 32-bit programs; Go's GOARM stops at 7, so 8 is reported as 7.
pub fn parse_arm_version(cpuinfo: &str) -> Option<i32> {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "CPU architecture")
        .and_then(|(_, v)| {
            let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<i32>().ok()
        })
        .map(|v| v.min(7))
}

// === libc ===

/// Names of the files in the directories where dynamic loaders live.
fn loader_names() -> Vec<String> {
    ["/lib", "/lib64", "/usr/lib", "/usr/lib64"]
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `glibc` when a glibc loader (`ld-linux*.so.*`) is installed, else `musl` when the musl
/// loader (`ld-musl-*.so.1`) is, else empty. glibc wins because Debian's `musl` package puts
/// a musl loader on glibc hosts. (Sensu runs `ldd --version`; reading the directory avoids
/// spawning a process every 20 s.)
pub fn detect_libc<S: AsRef<str>>(loader_dir_entries: &[S]) -> &'static str {
    let names = || loader_dir_entries.iter().map(AsRef::as_ref);
    if names().any(|n| n.starts_with("ld-linux") && n.contains(".so")) {
        "glibc"
    } else if names().any(|n| n.starts_with("ld-musl-")) {
        "musl"
    } else {
        ""
    }
}

// === virtualization ===

/// The files virtualization detection looks at, read once so detection itself is pure.
#[derive(Debug, Default, Clone)]
pub struct VirtEvidence {
    /// `/.dockerenv` exists.
    pub dockerenv: bool,
    /// `/run/.containerenv` exists (podman).
    pub containerenv: bool,
    /// `/proc/1/environ` (NUL-separated), often unreadable when not root.
    pub pid1_environ: String,
    pub self_cgroup: String,
    pub self_mountinfo: String,
    /// `/sys/class/dmi/id/{sys_vendor, product_name, bios_vendor}` joined by newlines.
    pub dmi: String,
    pub cpuinfo: String,
    pub modules: String,
    /// `/proc/xen/capabilities`, when `/proc/xen` exists.
    pub xen_capabilities: Option<String>,
    /// `/sys/hypervisor/type`.
    pub hypervisor_type: String,
}

impl VirtEvidence {
    fn read(cpuinfo: String) -> VirtEvidence {
        let dmi = ["sys_vendor", "product_name", "bios_vendor", "board_vendor"]
            .iter()
            .filter_map(|f| read(format!("/sys/class/dmi/id/{f}")))
            .collect::<Vec<_>>()
            .join("\n");
        VirtEvidence {
            dockerenv: Path::new("/.dockerenv").exists(),
            containerenv: Path::new("/run/.containerenv").exists(),
            pid1_environ: read("/proc/1/environ").unwrap_or_default(),
            self_cgroup: read("/proc/self/cgroup").unwrap_or_default(),
            self_mountinfo: read("/proc/self/mountinfo").unwrap_or_default(),
            dmi,
            cpuinfo,
            modules: read("/proc/modules").unwrap_or_default(),
            xen_capabilities: Path::new("/proc/xen")
                .exists()
                .then(|| read("/proc/xen/capabilities").unwrap_or_default()),
            hypervisor_type: read("/sys/hypervisor/type").unwrap_or_default(),
        }
    }
}

/// `(vm_system, vm_role)` as gopsutil names them (`docker`, `lxc`, `podman`, `kvm`, `xen`,
/// `vmware`, `vbox`, `hyperv`; role `guest` or `host`), empty strings when unknown.
/// Containers win over hypervisors: an agent in a container on a VM reports the container,
/// the environment its checks actually run in.
pub fn detect_virtualization(ev: &VirtEvidence) -> (String, String) {
    let guest = |s: &str| (s.to_string(), "guest".to_string());
    let host = |s: &str| (s.to_string(), "host".to_string());
    let environ_container = ev
        .pid1_environ
        .split(['\0', '\n'])
        .find_map(|kv| kv.strip_prefix("container="))
        .unwrap_or_default();

    if ev.containerenv || environ_container == "podman" {
        return guest("podman");
    }
    if ev.dockerenv
        || environ_container == "docker"
        || ev.self_cgroup.contains("docker")
        || ev.self_mountinfo.contains("/docker/containers/")
    {
        return guest("docker");
    }
    if environ_container.starts_with("lxc") || ev.self_cgroup.contains("/lxc") {
        return guest("lxc");
    }

    if let Some(caps) = &ev.xen_capabilities {
        return if caps.contains("control_d") {
            host("xen")
        } else {
            guest("xen")
        };
    }
    let dmi = ev.dmi.to_ascii_lowercase();
    if dmi.contains("vmware") {
        return guest("vmware");
    }
    if dmi.contains("virtualbox") || dmi.contains("innotek") {
        return guest("vbox");
    }
    if dmi.contains("microsoft corporation") && dmi.contains("virtual machine") {
        return guest("hyperv");
    }
    if dmi.contains("xen") || ev.hypervisor_type.trim() == "xen" {
        return guest("xen");
    }
    if dmi.contains("kvm")
        || dmi.contains("qemu")
        || dmi.contains("amazon ec2")
        || dmi.contains("google compute engine")
        || ev.cpuinfo.contains("QEMU Virtual CPU")
        || ev.cpuinfo.contains("Common KVM processor")
        || ev.cpuinfo.contains("Common 32-bit KVM processor")
    {
        return guest("kvm");
    }

    let module = |name: &str| {
        ev.modules
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    };
    if module("kvm") {
        return host("kvm");
    }
    if module("vboxdrv") {
        return host("vbox");
    }
    if module("vboxguest") {
        return guest("vbox");
    }
    (String::new(), String::new())
}

// === network ===

fn network() -> Network {
    let mut sys_interfaces = Vec::new();
    if let Ok(dir) = fs::read_dir("/sys/class/net") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let index = read(path.join("ifindex")).and_then(|s| s.trim().parse().ok());
            let mac = read(path.join("address"))
                .map(|s| normalize_mac(&s))
                .unwrap_or_default();
            sys_interfaces.push(SysInterface { name, index, mac });
        }
    }
    let addrs = if_addrs::get_if_addrs()
        .map(|list| {
            list.into_iter()
                .map(|i| {
                    let (ip, prefix) = match i.addr {
                        if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
                        if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
                    };
                    (i.name, i.index, ip, prefix)
                })
                .collect()
        })
        .unwrap_or_default();
    Network {
        interfaces: Some(merge_interfaces(sys_interfaces, addrs)),
    }
}

/// An interface as `/sys/class/net` lists it (it also lists interfaces without addresses,
/// which Sensu reports too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysInterface {
    pub name: String,
    pub index: Option<u32>,
    pub mac: String,
}

/// Join the interface list with the addresses (`(name, index, ip, prefix length)`), ordered by
/// interface index like Go's `net.Interfaces`; addresses become CIDR strings.
pub fn merge_interfaces(
    sys: Vec<SysInterface>,
    addrs: Vec<(String, Option<u32>, IpAddr, u8)>,
) -> Vec<NetworkInterface> {
    let mut by_name: BTreeMap<String, (Option<u32>, NetworkInterface)> = BTreeMap::new();
    for s in sys {
        by_name.insert(
            s.name.clone(),
            (
                s.index,
                NetworkInterface {
                    name: s.name,
                    mac: s.mac,
                    addresses: None,
                },
            ),
        );
    }
    for (name, index, ip, prefix) in addrs {
        let entry = by_name.entry(name.clone()).or_insert_with(|| {
            (
                index,
                NetworkInterface {
                    name,
                    mac: String::new(),
                    addresses: None,
                },
            )
        });
        if entry.0.is_none() {
            entry.0 = index;
        }
        entry
            .1
            .addresses
            .get_or_insert_with(Vec::new)
            .push(format!("{ip}/{prefix}"));
    }
    let mut list: Vec<_> = by_name.into_values().collect();
    list.sort_by(|a, b| {
        (a.0.unwrap_or(u32::MAX), &a.1.name).cmp(&(b.0.unwrap_or(u32::MAX), &b.1.name))
    });
    list.into_iter().map(|(_, i)| i).collect()
}

/// `/sys/class/net/<if>/address` text → MAC, empty for none (loopback reports all zeros,
/// where Go's `net.Interfaces` reports no hardware address).
pub fn normalize_mac(text: &str) -> String {
    let mac = text.trim().to_ascii_lowercase();
    if mac.is_empty() || mac.chars().all(|c| c == '0' || c == ':') {
        String::new()
    } else {
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU: &str = r#"PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
ID=ubuntu
ID_LIKE=debian
"#;

    fn info(text: &str) -> (String, String, String) {
        platform_info(&parse_os_release(text))
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn os_release_platforms() {
        assert_eq!(info(UBUNTU), s("ubuntu", "debian", "22.04"));
        assert_eq!(
            info("ID=debian\nVERSION_ID=\"12\"\n"),
            s("debian", "debian", "12")
        );
        assert_eq!(
            info("ID=\"rhel\"\nVERSION_ID=\"9.3\"\n"),
            s("redhat", "rhel", "9.3")
        );
        assert_eq!(
            info("ID=\"rocky\"\nVERSION_ID=\"9.3\"\n"),
            s("rocky", "rhel", "9.3")
        );
        assert_eq!(
            info("ID=\"almalinux\"\nVERSION_ID=\"8.9\""),
            s("almalinux", "rhel", "8.9")
        );
        assert_eq!(
            info("ID=\"ol\"\nVERSION_ID=\"8.9\""),
            s("oracle", "rhel", "8.9")
        );
        assert_eq!(
            info("ID=\"centos\"\nVERSION_ID=\"7\""),
            s("centos", "rhel", "7")
        );
        assert_eq!(
            info("ID=fedora\nVERSION_ID=40\n"),
            s("fedora", "fedora", "40")
        );
        assert_eq!(
            info("ID=alpine\nVERSION_ID=3.19.1\n"),
            s("alpine", "alpine", "3.19.1")
        );
        assert_eq!(
            info("ID=\"opensuse-leap\"\nVERSION_ID=\"15.5\""),
            s("opensuse-leap", "suse", "15.5")
        );
        assert_eq!(info("ID=arch\nBUILD_ID=rolling\n"), s("arch", "arch", ""));
        assert_eq!(
            info("ID=raspbian\nVERSION_ID=\"11\"\n"),
            s("raspbian", "debian", "11")
        );
        // Unknown ID: the family comes from ID_LIKE.
        assert_eq!(
            info("ID=pop\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22.04\""),
            s("pop", "debian", "22.04")
        );
        assert_eq!(info("# comment only\n"), s("", "", ""));
    }

    #[test]
    fn detailed_versions() {
        assert_eq!(debian_version("12.5\n").as_deref(), Some("12.5"));
        assert_eq!(debian_version("trixie/sid\n"), None);
        assert_eq!(
            redhat_release_version("CentOS Linux release 7.9.2009 (Core)\n").as_deref(),
            Some("7.9.2009")
        );
        assert_eq!(redhat_release_version("garbage"), None);
    }

    #[test]
    fn go_architectures() {
        assert_eq!(goarch("x86_64", true), "amd64");
        assert_eq!(goarch("aarch64", true), "arm64");
        assert_eq!(goarch("arm", true), "arm");
        assert_eq!(goarch("x86", true), "386");
        assert_eq!(goarch("powerpc64", true), "ppc64le");
        assert_eq!(goarch("riscv64", true), "riscv64");
        assert_eq!(goarch("s390x", false), "s390x");
    }

    #[test]
    fn arm_versions() {
        let pi = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n";
        assert_eq!(parse_arm_version(pi), Some(7));
        assert_eq!(parse_arm_version("CPU architecture: 6TEJ\n"), Some(6));
        assert_eq!(parse_arm_version("CPU architecture: 8\n"), Some(7));
        assert_eq!(parse_arm_version("model name : Intel\n"), None);
    }

    #[test]
    fn libc_detection() {
        assert_eq!(
            detect_libc(&["ld-linux-x86-64.so.2", "x86_64-linux-gnu"]),
            "glibc"
        );
        assert_eq!(
            detect_libc(&["ld-musl-x86_64.so.1", "libc.musl-x86_64.so.1"]),
            "musl"
        );
        assert_eq!(
            detect_libc(&["ld-musl-x86_64.so.1", "ld-linux-x86-64.so.2"]),
            "glibc"
        );
        assert_eq!(detect_libc(&["ld-linux-armhf.so.3"]), "glibc");
        assert_eq!(detect_libc::<&str>(&[]), "");
    }

    fn virt(f: impl FnOnce(&mut VirtEvidence)) -> (String, String) {
        let mut ev = VirtEvidence::default();
        f(&mut ev);
        detect_virtualization(&ev)
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn virtualization() {
        assert_eq!(virt(|_| {}), pair("", ""));
        assert_eq!(virt(|e| e.dockerenv = true), pair("docker", "guest"));
        assert_eq!(
            virt(|e| e.self_cgroup = "12:pids:/docker/abc123\n".into()),
            pair("docker", "guest")
        );
        assert_eq!(
            virt(|e| e.self_mountinfo =
                "1 2 0:1 /var/lib/docker/containers/abc/hostname /etc/hostname".into()),
            pair("docker", "guest")
        );
        assert_eq!(virt(|e| e.containerenv = true), pair("podman", "guest"));
        assert_eq!(
            virt(|e| e.pid1_environ = "PATH=/bin\0container=lxc\0".into()),
            pair("lxc", "guest")
        );
        assert_eq!(
            virt(|e| e.dmi = "QEMU\nStandard PC (Q35 + ICH9, 2009)".into()),
            pair("kvm", "guest")
        );
        assert_eq!(
            virt(|e| e.cpuinfo = "model name\t: QEMU Virtual CPU version 2.5+".into()),
            pair("kvm", "guest")
        );
        assert_eq!(
            virt(|e| e.dmi = "VMware, Inc.\nVMware Virtual Platform".into()),
            pair("vmware", "guest")
        );
        assert_eq!(
            virt(|e| e.dmi = "innotek GmbH\nVirtualBox".into()),
            pair("vbox", "guest")
        );
        assert_eq!(
            virt(|e| e.dmi = "Microsoft Corporation\nVirtual Machine".into()),
            pair("hyperv", "guest")
        );
        assert_eq!(
            virt(|e| e.xen_capabilities = Some("control_d\n".into())),
            pair("xen", "host")
        );
        assert_eq!(
            virt(|e| e.xen_capabilities = Some(String::new())),
            pair("xen", "guest")
        );
        assert_eq!(
            virt(|e| e.modules =
                "kvm_intel 385024 0 - Live 0x0\nkvm 1142784 1 kvm_intel, Live 0x0\n".into()),
            pair("kvm", "host")
        );
        // A container inside a VM reports the container.
        assert_eq!(
            virt(|e| {
                e.dockerenv = true;
                e.dmi = "QEMU".into();
            }),
            pair("docker", "guest")
        );
    }

    #[test]
    fn interfaces_merge() {
        let sys = vec![
            SysInterface {
                name: "eth0".into(),
                index: Some(2),
                mac: "52:54:00:12:34:56".into(),
            },
            SysInterface {
                name: "lo".into(),
                index: Some(1),
                mac: String::new(),
            },
            SysInterface {
                name: "docker0".into(),
                index: Some(3),
                mac: "02:42:ac:11:00:01".into(),
            },
        ];
        let addrs = vec![
            ("lo".into(), Some(1), "127.0.0.1".parse().unwrap(), 8),
            ("lo".into(), Some(1), "::1".parse().unwrap(), 128),
            ("eth0".into(), Some(2), "10.0.0.5".parse().unwrap(), 24),
        ];
        let got = merge_interfaces(sys, addrs);
        let names: Vec<_> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "docker0"]);
        assert_eq!(
            got[0].addresses.as_deref(),
            Some(&["127.0.0.1/8".to_string(), "::1/128".to_string()][..])
        );
        assert_eq!(
            got[1].addresses.as_deref(),
            Some(&["10.0.0.5/24".to_string()][..])
        );
        assert_eq!(got[1].mac, "52:54:00:12:34:56");
        assert_eq!(got[2].addresses, None);
    }

    #[test]
    fn collect_on_this_host() {
        let sys = collect();
        assert_eq!(sys.os, std::env::consts::OS);
        assert!(!sys.arch.is_empty());
        assert!(["glibc", "musl", ""].contains(&sys.libc_type.as_str()));
        assert!(["guest", "host", ""].contains(&sys.vm_role.as_str()));
        assert!(sys.processes.is_none());
        assert_eq!(sys.cloud_provider, "");
        let json = serde_json::to_string(&sys).unwrap();
        assert!(json.contains("\"processes\":null"), "{json}");
    }

    #[test]
    fn macs() {
        assert_eq!(normalize_mac("00:00:00:00:00:00\n"), "");
        assert_eq!(normalize_mac("52:54:00:AB:cd:EF\n"), "52:54:00:ab:cd:ef");
        assert_eq!(normalize_mac(""), "");
    }
}
