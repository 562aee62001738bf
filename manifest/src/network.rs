//! The outside hosts a function may connect to: `[network] allow = [...]` in its
//! `function.toml`. Nothing is allowed by default; the host checks every connection (and so
//! every redirect, which is a new request) against the list.
//!
//! An entry is `[scheme://]host[:port]`:
//! - `host` is a DNS name (`api.example.com`), a wildcard for its subdomains
//!   (`*.example.org`: `a.example.org`, `a.b.example.org`, not `example.org` itself), `*` (any
//!   host), an IP address (`127.0.0.1`, `[::1]`) or an IP range (`10.0.0.0/8`);
//! - `scheme` is `http` or `https`; without one, both (and raw TCP where a function may use
//!   it);
//! - `port` is a number or `*`; without one, the scheme's port (80 or 443), or both when no
//!   scheme is given either.
//!
//! Private, loopback and link-local addresses (where a cloud's metadata service and a node's
//! own admin port live) are reached only through an entry that names the address or its range:
//! a DNS name that resolves to one is refused, whatever entry allowed the name (SSRF).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// `[network]` in `function.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Entries as described in this module; empty: no outbound connections at all.
    #[serde(default)]
    pub allow: Vec<String>,
}

impl NetworkSettings {
    pub fn is_default(&self) -> bool {
        self.allow.is_empty()
    }
}

/// The scheme of a connection being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    /// A plain TCP (or TLS) connection that is not HTTP.
    Tcp,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Name(String),
    /// `*.suffix`: the suffix with its leading dot, lowercase.
    Subdomains(String),
    Range(IpRange),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ports {
    Any,
    One(u16),
    /// No port given and no scheme: HTTP's and HTTPS's.
    Web,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Option<Scheme>,
    host: Host,
    ports: Ports,
}

/// A parsed `[network] allow`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAllowlist {
    entries: Vec<Entry>,
    /// The entries as written.
    written: Vec<String>,
}

/// Why a connection is refused; the text names the setting to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{scheme}://{host}:{port} is not allowed: add it to [network] allow in function.toml \
         (or ask the operator to)"
    )]
    NotListed { scheme: &'static str, host: String, port: u16 },
    #[error(
        "{host} is or resolves to {ip}, {kind}, which only an entry naming the address can \
         reach: add \"{ip}\" (or its range, with the port) to [network] allow in function.toml"
    )]
    PrivateAddress { host: String, ip: IpAddr, kind: &'static str },
}

impl NetworkAllowlist {
    /// Parses entries; the error names the first that is not valid.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let written: Vec<String> = entries.iter().map(|e| e.as_ref().trim().to_string()).collect();
        let entries = written
            .iter()
            .map(|entry| {
                parse_entry(entry).map_err(|why| format!("network.allow entry {entry:?}: {why}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries, written })
    }

    /// The entries as written.
    pub fn entries(&self) -> &[String] {
        &self.written
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a connection to `host` (a name or an IP address, as the URL spells it) at
    /// `port` is listed. An IP address given as the host is listed by an address or range
    /// entry (or `*` for a public one; see [`Self::check_address`]).
    pub fn check_host(&self, scheme: Scheme, host: &str, port: u16) -> Result<(), Refusal> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let ip = host.parse::<IpAddr>().ok();
        let listed = self.entries.iter().any(|entry| {
            entry.allows_port(scheme, port)
                && match (&entry.host, ip) {
                    (Host::Any, _) => true,
                    (Host::Name(name), None) => name == host,
                    (Host::Subdomains(suffix), None) => host.ends_with(suffix.as_str()),
                    (Host::Range(range), Some(ip)) => range.contains(ip),
                    _ => false,
                }
        });
        if listed {
            Ok(())
        } else {
            Err(Refusal::NotListed { scheme: scheme.name(), host: host.to_string(), port })
        }
    }

    /// Whether an address or range entry lists `ip` with `port`.
    pub fn lists_address(&self, scheme: Scheme, ip: IpAddr, port: u16) -> bool {
        self.entries.iter().any(|entry| {
            entry.allows_port(scheme, port)
                && matches!(&entry.host, Host::Range(range) if range.contains(ip))
        })
    }

    /// Whether an address `host` resolved to (or that it is) may be connected to: a public
    /// address always (the host was checked by [`Self::check_host`]); a private one only
    /// when an address or range entry lists it with the port.
    pub fn check_address(
        &self,
        scheme: Scheme,
        host: &str,
        ip: IpAddr,
        port: u16,
    ) -> Result<(), Refusal> {
        match forbidden_kind(ip) {
            Some(kind) if !self.lists_address(scheme, ip, port) => {
                Err(Refusal::PrivateAddress { host: host.to_string(), ip, kind })
            }
            _ => Ok(()),
        }
    }
}

impl Entry {
    fn allows_port(&self, scheme: Scheme, port: u16) -> bool {
        if self.scheme.is_some_and(|s| s != scheme) {
            return false;
        }
        match self.ports {
            Ports::Any => true,
            Ports::One(p) => p == port,
            Ports::Web => port == 80 || port == 443,
        }
    }
}

fn parse_entry(entry: &str) -> Result<Entry, String> {
    if entry.is_empty() {
        return Err("is empty".into());
    }
    let (scheme, rest) = match entry.split_once("://") {
        Some(("http", rest)) => (Some(Scheme::Http), rest),
        Some(("https", rest)) => (Some(Scheme::Https), rest),
        Some((other, _)) => return Err(format!("scheme {other:?} is not http or https")),
        None => (None, entry),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) && !is_range(rest) {
        return Err("has a path, query or user: give only [scheme://]host[:port]".into());
    }
    let (host, port) = split_port(rest)?;
    let ports = match (port, scheme) {
        (Some("*"), _) => Ports::Any,
        (Some(port), _) => Ports::One(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {port:?} is not 1-65535 or *"))?,
        ),
        (None, Some(Scheme::Http)) => Ports::One(80),
        (None, Some(Scheme::Https)) => Ports::One(443),
        (None, _) => Ports::Web,
    };
    Ok(Entry { scheme, host: parse_host(host)?, ports })
}

fn is_range(text: &str) -> bool {
    text.split_once('/').is_some_and(|(_, bits)| bits.split(':').next().is_some_and(is_digits))
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `host[:port]`, where an IPv6 host is bracketed (`[::1]:8080`).
fn split_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("has an unclosed [")?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("has {after:?} after the address")),
            },
        };
    }
    match text.rsplit_once(':') {
        // A bare IPv6 address or range (more than one colon) has no port.
        Some((host, _)) if host.contains(':') => Ok((text, None)),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn parse_host(host: &str) -> Result<Host, String> {
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Ok(Host::Any);
    }
    if host.contains('/') || host.parse::<IpAddr>().is_ok() {
        return host.parse::<IpRange>().map(Host::Range);
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host.as_str()),
    };
    let name = name.trim_end_matches('.');
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("{host:?} is not a host name, *.name, *, an IP address or range"));
    }
    Ok(if wildcard { Host::Subdomains(format!(".{name}")) } else { Host::Name(name.into()) })
}

/// An address range: `127.0.0.1`, `10.0.0.0/8`, `::1`, `[fd00::]/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!("'{text}' is not an IP address or CIDR range (e.g. 127.0.0.1, 10.0.0.0/8, ::1)")
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(invalid)?,
            None => bits,
        };
        Ok(Self { network, prefix })
    }
}

impl IpRange {
    /// Whether `ip` lies in the range (IPv4 addresses written as IPv6 count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`, `::127.0.0.1`, `64:ff9b::7f00:1`) as
/// the IPv4 address they reach.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let bits = u128::from(v6);
    let embedded = IpAddr::V4(Ipv4Addr::from((bits & 0xffff_ffff) as u32));
    // IPv4-compatible (deprecated) and the NAT64 well-known prefix 64:ff9b::/96.
    if (bits >> 32 == 0 && bits > 1) || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return embedded;
    }
    ip
}

/// The kind of address that only an explicit entry may reach, if `ip` is one: loopback,
/// private (and carrier-grade NAT), link-local (where clouds keep their metadata service),
/// unspecified, multicast, reserved.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast() || a >= 240 {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> NetworkAllowlist {
        NetworkAllowlist::parse(entries).unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let none = NetworkAllowlist::default();
        assert!(none.check_host(Scheme::Https, "api.example.com", 443).is_err());
        assert!(none.check_host(Scheme::Http, "127.0.0.1", 80).is_err());
    }

    #[test]
    fn a_url_entry_allows_its_scheme_host_and_port_only() {
        let allow = list(&["https://api.example.com"]);
        assert!(allow.check_host(Scheme::Https, "api.example.com", 443).is_ok());
        assert!(allow.check_host(Scheme::Https, "API.Example.com.", 443).is_ok());
        assert!(allow.check_host(Scheme::Http, "api.example.com", 80).is_err());
        assert!(allow.check_host(Scheme::Https, "api.example.com", 8443).is_err());
        assert!(allow.check_host(Scheme::Https, "evil-api.example.com", 443).is_err());
        assert!(allow.check_host(Scheme::Https, "api.example.com.evil.net", 443).is_err());
    }

    #[test]
    fn host_port_entries_allow_every_scheme_on_that_port() {
        let allow = list(&["smtp.example.com:465", "db.example.com:*"]);
        assert!(allow.check_host(Scheme::Tcp, "smtp.example.com", 465).is_ok());
        assert!(allow.check_host(Scheme::Https, "smtp.example.com", 465).is_ok());
        assert!(allow.check_host(Scheme::Tcp, "smtp.example.com", 25).is_err());
        assert!(allow.check_host(Scheme::Tcp, "db.example.com", 5432).is_ok());
    }

    #[test]
    fn a_bare_host_allows_http_and_https_ports() {
        let allow = list(&["example.net"]);
        assert!(allow.check_host(Scheme::Http, "example.net", 80).is_ok());
        assert!(allow.check_host(Scheme::Https, "example.net", 443).is_ok());
        assert!(allow.check_host(Scheme::Https, "example.net", 8080).is_err());
    }

    #[test]
    fn wildcards_match_subdomains_not_the_apex_nor_lookalikes() {
        let allow = list(&["*.example.org"]);
        assert!(allow.check_host(Scheme::Https, "a.example.org", 443).is_ok());
        assert!(allow.check_host(Scheme::Https, "a.b.example.org", 443).is_ok());
        assert!(allow.check_host(Scheme::Https, "example.org", 443).is_err());
        assert!(allow.check_host(Scheme::Https, "badexample.org", 443).is_err());
    }

    #[test]
    fn addresses_and_ranges_match_literal_hosts() {
        let allow = list(&["http://127.0.0.1:8080", "10.0.0.0/8:*", "[::1]:9000"]);
        assert!(allow.check_host(Scheme::Http, "127.0.0.1", 8080).is_ok());
        assert!(allow.check_host(Scheme::Http, "127.0.0.2", 8080).is_err());
        assert!(allow.check_host(Scheme::Tcp, "10.1.2.3", 5432).is_ok());
        assert!(allow.check_host(Scheme::Http, "[::1]", 9000).is_ok());
        assert!(allow.check_host(Scheme::Http, "::1", 9001).is_err());
        // A name is not matched by an address entry, even one it may resolve to.
        assert!(allow.check_host(Scheme::Http, "localhost", 8080).is_err());
    }

    #[test]
    fn a_name_that_resolves_to_a_private_address_needs_the_address_listed() {
        let allow = list(&["*", "http://127.0.0.1:8080"]);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(allow.check_address(Scheme::Https, "x.example", public, 443).is_ok());
        let refused = allow.check_address(Scheme::Http, "x.example", metadata, 80).unwrap_err();
        assert!(refused.to_string().contains("169.254.169.254"), "{refused}");
        assert!(allow.check_address(Scheme::Http, "localhost", loopback, 8080).is_ok());
        assert!(allow.check_address(Scheme::Http, "localhost", loopback, 8081).is_err());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(allow.check_address(Scheme::Http, "x", mapped, 8081).is_err());
        assert!(allow.check_address(Scheme::Http, "x", mapped, 8080).is_ok());
    }

    #[test]
    fn private_ranges_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.1.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(forbidden_kind(private.parse().unwrap()).is_some(), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "172.32.0.1"] {
            assert!(forbidden_kind(public.parse().unwrap()).is_none(), "{public}");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        for (bad, why) in [
            ("ftp://x.example", "scheme"),
            ("https://x.example/path", "path"),
            ("x.example:0", "port"),
            ("x.example:http", "port"),
            ("exa mple.com", "host name"),
            ("10.0.0.0/33", "CIDR"),
            ("[::1", "unclosed"),
            ("", "empty"),
            ("user@x.example", "user"),
        ] {
            let error = NetworkAllowlist::parse(&[bad]).unwrap_err();
            assert!(error.contains(why) && error.contains("network.allow"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_refusal_names_the_setting() {
        let refused =
            NetworkAllowlist::default().check_host(Scheme::Https, "x.example", 443).unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("https://x.example:443") && text.contains("[network] allow"));
    }
}
