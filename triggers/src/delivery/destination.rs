//! Where outbound deliveries (callbacks and webhooks) may connect. A callback URL comes from a
//! caller, a function author or a subscription, so without a check it reaches whatever the
//! server can reach: its own admin API, the cloud metadata service, the private network. Every
//! destination is resolved here and each address checked; the HTTP client resolves names only
//! through [`CheckedResolver`], so it connects to an address that passed the check (a name
//! that resolves differently a moment later — DNS rebinding — gains nothing). The operator
//! opens exceptions with `--allow-callback-host <IP or CIDR>`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long resolving a callback host may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// An address range the operator allows deliveries to reach (`127.0.0.1`, `10.0.0.0/8`, `::1`):
/// the same ranges as a function's `[network] allow` takes.
pub use wasmfn_manifest::network::IpRange as AllowedNet;
use wasmfn_manifest::network::{canonical, forbidden_kind};

/// Why a destination was refused.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "destination {host} refused: {reason} (an operator may allow it with --allow-callback-host)"
)]
pub struct DestinationRefused {
    pub host: String,
    pub reason: String,
}

/// Why a destination could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(transparent)]
    Refused(#[from] DestinationRefused),
    /// The name did not resolve (now); trying again later may help.
    #[error("could not resolve {host}: {detail}")]
    Lookup { host: String, detail: String },
}

/// The addresses deliveries may not reach, and the operator's exceptions.
#[derive(Clone, Debug, Default)]
pub struct DestinationPolicy {
    /// Ranges allowed although the checks below would refuse them.
    pub allow: Vec<AllowedNet>,
}

impl DestinationPolicy {
    /// `Err(reason)` when deliveries may not connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|net| net.contains(ip)) {
            return Ok(());
        }
        if let Some(kind) = forbidden_kind(canonical(ip)) {
            return Err(format!("{ip} is {kind}"));
        }
        // An address of one of this host's interfaces (a UDP bind succeeds only on those):
        // the server itself, whatever interface or port it listens on.
        if std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok() {
            return Err(format!("{ip} is an address of this server"));
        }
        Ok(())
    }

    /// The addresses of `host` deliveries may connect to; refused when it has none.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, DestinationError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let refused = |reason: String| DestinationRefused { host: host.to_string(), reason };
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_ip(ip).map_err(refused)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        // Resolved by /etc/hosts or not at all on most systems; never a receiver elsewhere.
        if name == "localhost" || name.ends_with(".localhost") {
            let allowed = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
                .into_iter()
                .find(|ip| self.allow.iter().any(|net| net.contains(*ip)));
            return match allowed {
                Some(ip) => Ok(vec![SocketAddr::new(ip, port)]),
                None => Err(refused("it names this server (loopback)".into()).into()),
            };
        }
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)));
        let found: Vec<SocketAddr> = match lookup.await {
            Ok(Ok(addresses)) => addresses.collect(),
            Ok(Err(error)) => {
                return Err(DestinationError::Lookup {
                    host: host.into(),
                    detail: error.to_string(),
                })
            }
            Err(_) => {
                return Err(DestinationError::Lookup {
                    host: host.into(),
                    detail: "timed out".into(),
                })
            }
        };
        let mut reasons = Vec::new();
        let checked: Vec<SocketAddr> = found
            .into_iter()
            .filter(|address| match self.check_ip(address.ip()) {
                Ok(()) => true,
                Err(reason) => {
                    reasons.push(reason);
                    false
                }
            })
            .collect();
        if checked.is_empty() {
            let reason = if reasons.is_empty() {
                "it resolves to no address".to_string()
            } else {
                format!("it resolves to {}", reasons.join(", "))
            };
            return Err(refused(reason).into());
        }
        Ok(checked)
    }

    /// Refuses `url` at once when its host is, or resolves to, an address deliveries may not
    /// reach: for a URL given when something is created (a callback, a webhook), so that the
    /// mistake is reported then and not at the first delivery. A name that does not resolve
    /// yet passes: each delivery resolves and checks it again.
    pub async fn refuse_internal(&self, url: &url::Url) -> Result<(), DestinationRefused> {
        match self.check_url(url).await {
            Err(DestinationError::Refused(why)) => Err(why),
            Ok(()) | Err(DestinationError::Lookup { .. }) => Ok(()),
        }
    }

    /// Checks a URL's host (its port is not part of the check).
    pub async fn check_url(&self, url: &url::Url) -> Result<(), DestinationError> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.resolve(&ip.to_string(), port).await.map(drop),
            Some(url::Host::Ipv6(ip)) => self.resolve(&ip.to_string(), port).await.map(drop),
            Some(url::Host::Domain(name)) => self.resolve(name, port).await.map(drop),
            None => Err(DestinationRefused {
                host: String::new(),
                reason: "the URL has no host".into(),
            }
            .into()),
        }
    }
}

/// The delivery client's resolver: names resolve only to addresses the policy allows, so the
/// connection goes to an address that was checked.
#[derive(Debug)]
pub struct CheckedResolver(pub Arc<DestinationPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, host) = (self.0.clone(), name.as_str().to_string());
        Box::pin(async move {
            match policy.resolve(&host, 0).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs),
                // The refusal itself, so the deliverer finds it in the error's causes.
                Err(DestinationError::Refused(refused)) => Err(refused.into()),
                Err(error) => Err(error.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &DestinationPolicy, url: &str) -> String {
        let url = url::Url::parse(url).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match rt.block_on(policy.check_url(&url)) {
            Err(DestinationError::Refused(why)) => why.to_string(),
            other => panic!("{url} was not refused: {other:?}"),
        }
    }

    #[test]
    fn internal_destinations_are_refused_in_every_spelling() {
        let policy = DestinationPolicy::default();
        for (url, kind) in [
            ("http://127.0.0.1:8080/admin", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://0x7f.1/", "loopback"),
            ("http://0.0.0.0:8080/", "unspecified"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://localhost:8080/", "loopback"),
            ("http://LOCALHOST./", "loopback"),
            ("http://a.localhost/", "loopback"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://10.1.2.3/", "private"),
            ("http://172.16.0.1/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://100.64.0.1/", "private"),
            ("http://[fd00::1]/", "unique local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://224.0.0.1/", "multicast"),
            ("http://[ff02::1]/", "multicast"),
            ("http://255.255.255.255/", "reserved"),
        ] {
            let why = refused(&policy, url);
            assert!(why.contains(kind), "{url}: {why}");
        }
    }

    #[test]
    fn the_allowlist_opens_exactly_its_ranges() {
        let policy = DestinationPolicy {
            allow: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("10.200.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check_ip("11.0.0.1".parse().unwrap()).is_ok(), "public stays allowed");
        assert!(policy.check_ip("::1".parse().unwrap()).is_err());
        let v6: AllowedNet = "[::1]".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<AllowedNet>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<AllowedNet>().is_err());
        assert!("example.com".parse::<AllowedNet>().is_err());
    }
}
