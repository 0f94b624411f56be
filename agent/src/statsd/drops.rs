//! Datagrams the kernel dropped because the socket's receive buffer was full, from the
//! `drops` column of `/proc/net/udp` and `/proc/net/udp6` (Linux).
//!
//! The socket's row is found by its inode, read from the `/proc/self/fd/<fd>` link
//! (`socket:[<inode>]`); matching on the inode needs no knowledge of how the kernel prints
//! addresses (host byte order, IPv4-mapped IPv6).

use std::os::fd::AsRawFd;

/// The inode of a socket, or `None` where `/proc` is not there.
pub(super) fn socket_inode(socket: &impl AsRawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    parse_socket_link(link.to_str()?)
}

fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket's total drops since it was created.
pub(super) async fn read(inode: u64) -> Option<u64> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = tokio::fs::read_to_string(table).await
            && let Some(drops) = parse_drops(&text, inode)
        {
            return Some(drops);
        }
    }
    None
}

/// The `drops` of the row with `inode` in a `/proc/net/udp{,6}` table. Data rows have 13
/// whitespace-separated fields (the header names some columns in pairs, so it cannot be
/// used to index them): `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref
/// pointer drops`.
pub(super) fn parse_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 13 || fields[9].parse::<u64>().ok()? != inode {
            return None;
        }
        fields[12].parse().ok()
    })
}

/// Turns the kernel's running total into "new since the last look".
#[derive(Debug, Default)]
pub(super) struct KernelDrops {
    last: u64,
}

impl KernelDrops {
    /// The drops since the previous call, if any.
    pub fn update(&mut self, total: u64) -> Option<u64> {
        let new = total.saturating_sub(self.last);
        self.last = total;
        (new > 0).then_some(new)
    }
}

/// A loopback UDP socket with the smallest receive buffer the kernel allows: never read, most
/// datagrams sent to it drop.
#[cfg(test)]
pub(super) fn socket_with_tiny_buffer() -> std::net::UdpSocket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&loopback.into()).unwrap();
    socket.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 54321 2 0000000000000000 17
  456: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 0
";

    #[test]
    fn finds_the_row_by_inode() {
        assert_eq!(parse_drops(TABLE, 54321), Some(17));
        assert_eq!(parse_drops(TABLE, 999), Some(0));
        assert_eq!(parse_drops(TABLE, 1), None);
        assert_eq!(parse_drops("", 1), None);
        assert_eq!(parse_drops("header\ngarbage line\n", 1), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[54321]"), Some(54321));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn counts_new_drops_only() {
        let mut k = KernelDrops::default();
        assert_eq!(k.update(0), None);
        assert_eq!(k.update(5), Some(5));
        assert_eq!(k.update(5), None);
        assert_eq!(k.update(12), Some(7));
    }

    #[test]
    fn a_real_socket_is_found_in_proc() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let Some(inode) = socket_inode(&socket) else {
            // Not Linux, or no /proc: nothing to check.
            return;
        };
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert_eq!(parse_drops(&table, inode), Some(0));
    }

    #[test]
    fn kernel_drops_are_seen() {
        let socket = socket_with_tiny_buffer();
        let Some(inode) = socket_inode(&socket) else {
            return;
        };
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(&[b'x'; 512], to).unwrap();
        }
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        let drops = parse_drops(&table, inode).unwrap();
        assert!(drops > 100, "{drops}");
    }
}
