//! Test support (feature `test-util`): a file server on loopback (HTTP, or HTTPS with a test
//! CA made by rcgen), and archive builders, including hostile entries no well-behaved tar
//! writer produces. Used by this crate's tests, the agent's and the backend's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha512};

/// SHA-512 of `bytes`, lower-case hex.
pub fn sha512_hex(bytes: &[u8]) -> String {
    crate::hex(&Sha512::digest(bytes))
}

// === test CA ===

/// A certificate authority and a server certificate for `localhost` and `127.0.0.1`.
pub struct TestCa {
    pub ca_pem: String,
    server_cert_der: Vec<u8>,
    server_key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "picket test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_der: cert.der().to_vec(),
            server_key_der: key.serialize_der(),
        }
    }

    /// Write the CA certificate (PEM) for a `--trusted-ca-file`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).expect("write CA");
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rustls::pki_types::CertificateDer::from(self.server_cert_der.clone());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(self.server_key_der.clone()),
        );
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server config"),
        )
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

// === file server ===

#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    /// Announce the whole length, send this many bytes, then close.
    cut_at: Option<usize>,
    /// Answer 302 to this location instead.
    redirect: Option<String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    /// Request headers per path, in arrival order.
    requests: HashMap<String, Vec<Vec<(String, String)>>>,
    held: bool,
}

/// A tiny HTTP/1.1 file server on 127.0.0.1 (one thread per connection), stopped on drop.
pub struct FileServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Plain HTTP.
    pub fn start() -> FileServer {
        FileServer::start_with(None)
    }

    /// HTTPS with a certificate signed by `ca`.
    pub fn start_tls(ca: &TestCa) -> FileServer {
        FileServer::start_with(Some(ca.server_config()))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let is_tls = tls.is_some();
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    let tls = tls.clone();
                    std::thread::spawn(move || {
                        let _ = match tls {
                            Some(cfg) => {
                                let Ok(server) = rustls::ServerConnection::new(cfg) else {
                                    return;
                                };
                                serve(rustls::StreamOwned::new(server, conn), &shared)
                            }
                            None => serve(conn, &shared),
                        };
                    });
                }
            })
        };
        FileServer {
            addr,
            tls: is_tls,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        // The certificate names "localhost" too; the IP keeps resolution out of the test.
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.state().routes.insert(
            path.into(),
            Route {
                body,
                cut_at: None,
                redirect: None,
            },
        );
    }

    /// Serve `body` with its full `Content-Length` but close the connection after `cut_at`
    /// bytes: a download interrupted halfway.
    pub fn serve_cut(&self, path: &str, body: Vec<u8>, cut_at: usize) {
        self.state().routes.insert(
            path.into(),
            Route {
                body,
                cut_at: Some(cut_at),
                redirect: None,
            },
        );
    }

    /// Answer requests for `path` with a 302 to `location` (a path on this server or a URL).
    pub fn redirect(&self, path: &str, location: &str) {
        self.state().routes.insert(
            path.into(),
            Route {
                body: Vec::new(),
                cut_at: None,
                redirect: Some(location.into()),
            },
        );
    }

    /// Hold every response until [`release`](Self::release).
    pub fn hold(&self) {
        self.state().held = true;
    }

    pub fn release(&self) {
        self.state().held = false;
        self.shared.1.notify_all();
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.state().requests.get(path).map_or(0, Vec::len)
    }

    /// Headers of every request for `path` (names lower-cased).
    pub fn request_headers(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.state().requests.get(path).cloned().unwrap_or_default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.release();
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: impl Read + Write, shared: &(Mutex<State>, Condvar)) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    drop(reader);
    let route = {
        let (lock, cvar) = shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        state
            .requests
            .entry(path.clone())
            .or_default()
            .push(headers);
        while state.held {
            state = cvar.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.routes.get(&path).cloned()
    };
    match route {
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            )?;
        }
        Some(Route {
            redirect: Some(location),
            ..
        }) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
        }
        Some(r) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                r.body.len()
            );
            stream.write_all(head.as_bytes())?;
            let end = r.cut_at.unwrap_or(r.body.len()).min(r.body.len());
            stream.write_all(&r.body[..end])?;
        }
    }
    stream.flush()
}

// === archives ===

/// A well-formed gzip-compressed tar of `(path, content, mode)` files.
pub fn tar_gz(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, path, *content).expect("append");
    }
    gzip(&builder.into_inner().expect("tar"))
}

/// Gzip `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// One raw ustar entry, written byte by byte so any name, type and link survive.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    /// `b'0'` file, `b'1'` hard link, `b'2'` symlink, `b'3'` char, `b'4'` block,
    /// `b'5'` directory, `b'6'` FIFO.
    pub kind: u8,
    pub link: Vec<u8>,
    pub mode: u32,
    pub content: Vec<u8>,
    /// Declared size; `None` = the content's length.
    pub size: Option<u64>,
}

impl RawEntry {
    pub fn file(name: &str, content: &[u8]) -> RawEntry {
        RawEntry {
            name: name.into(),
            kind: b'0',
            link: Vec::new(),
            mode: 0o755,
            content: content.to_vec(),
            size: None,
        }
    }

    pub fn dir(name: &str) -> RawEntry {
        RawEntry {
            kind: b'5',
            ..RawEntry::file(name, b"")
        }
    }

    pub fn symlink(name: &str, target: &str) -> RawEntry {
        RawEntry {
            kind: b'2',
            link: target.into(),
            ..RawEntry::file(name, b"")
        }
    }

    pub fn hardlink(name: &str, target: &str) -> RawEntry {
        RawEntry {
            kind: b'1',
            link: target.into(),
            ..RawEntry::file(name, b"")
        }
    }

    pub fn special(name: &str, kind: u8) -> RawEntry {
        RawEntry {
            kind,
            ..RawEntry::file(name, b"")
        }
    }
}

/// A tar stream of raw entries (names up to 100 bytes), with the end-of-archive blocks.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        let size = e.size.unwrap_or(e.content.len() as u64);
        put(&mut h[0..100], &e.name);
        put(&mut h[100..108], format!("{:07o}\0", e.mode).as_bytes());
        put(&mut h[108..116], b"0000000\0");
        put(&mut h[116..124], b"0000000\0");
        put(&mut h[124..136], format!("{size:011o}\0").as_bytes());
        put(&mut h[136..148], b"00000000000\0");
        h[156] = e.kind;
        put(&mut h[157..257], &e.link);
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        put(&mut h[329..337], b"0000000\0");
        put(&mut h[337..345], b"0000000\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.content);
        let pad = (512 - e.content.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A gzip-compressed asset holding `exe` as `bin/<name>` and the shared libraries `ldd` lists
/// for it in `lib/`, except glibc's own (the loader, libc, libm, ...: they must match the
/// host's loader, and every Linux host has them).
pub fn executable_asset(exe: &Path) -> Vec<u8> {
    let name = exe
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |archive_path: String, file: &Path| {
        let data = std::fs::read(file).expect("read file for the asset");
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut h, archive_path, &data[..])
            .expect("append");
    };
    add(format!("bin/{name}"), exe);
    let ldd = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .expect("run ldd");
    const GLIBC: &[&str] = &[
        "linux-vdso",
        "ld-linux",
        "libc.so",
        "libm.so",
        "libdl.so",
        "libpthread.so",
        "librt.so",
    ];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some((lib, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        if GLIBC.iter().any(|g| lib.starts_with(g)) {
            continue;
        }
        let Some(path) = rest
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        else {
            continue;
        };
        add(format!("lib/{lib}"), Path::new(path));
    }
    gzip(&builder.into_inner().expect("tar"))
}
