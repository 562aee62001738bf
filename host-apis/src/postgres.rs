//! Connections to PostgreSQL, shared by the document store and the node state: one URL syntax,
//! one TLS policy, one pool type.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// A pool of up to `max_size` connections to `url` (`postgres://user@host:port/db`, with
/// `?sslmode=require` for TLS). Connections are made when first needed: a wrong host or password
/// shows at the first query, not here.
///
/// `sslmode=require` (or `prefer`) encrypts the connection, and unlike libpq's `require` the
/// server's certificate is always verified (its name against the URL's host), against Mozilla's
/// roots and the PEM file named by `sslrootcert=<path>` if given. Without `sslmode`, or with
/// `sslmode=disable`, the connection is not encrypted. `statement_timeout`, if given, is set on
/// every connection.
///
/// The error says what is wrong with the URL without repeating it (it may hold a password).
pub fn pool(
    url: &str,
    max_size: usize,
    statement_timeout: Option<std::time::Duration>,
) -> Result<Pool, String> {
    let (mut config, tls) = settings(url)?;
    if let Some(timeout) = statement_timeout {
        config.options(format!("-c statement_timeout={}", timeout.as_millis().max(1)));
    }
    let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match tls {
        Some(tls) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            recycling,
        ),
        None => Manager::from_config(config, NoTls, recycling),
    };
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|_| "could not set up the PostgreSQL pool".to_string())
}

/// The connection settings of `url` and, when it asks for TLS, the TLS configuration.
pub(crate) fn settings(
    url: &str,
) -> Result<(tokio_postgres::Config, Option<rustls::ClientConfig>), String> {
    let invalid = || "the PostgreSQL URL is not valid".to_string();
    let mut parsed = url::Url::parse(url).map_err(|_| invalid())?;
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let root_cert = pairs.iter().find(|(key, _)| key == "sslrootcert").map(|(_, v)| v.clone());
    let mode = pairs.iter().find(|(key, _)| key == "sslmode").map(|(_, v)| v.clone());
    let kept: Vec<&(String, String)> =
        pairs.iter().filter(|(key, _)| key != "sslrootcert").collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut config: tokio_postgres::Config = parsed.as_str().parse().map_err(|_| invalid())?;
    let tls = match mode.as_deref() {
        None | Some("disable") => {
            if root_cert.is_some() {
                return Err(
                    "the PostgreSQL URL names an sslrootcert without sslmode=require".into()
                );
            }
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        }
        Some(_) => {
            let pem = match &root_cert {
                Some(path) => Some(std::fs::read(path).map_err(|_| {
                    "the PostgreSQL URL's sslrootcert file cannot be read".to_string()
                })?),
                None => None,
            };
            let tls = crate::tls::client_config(pem.as_deref())
                .map_err(|error| format!("the PostgreSQL URL's sslrootcert: {error}"))?;
            Some(tls)
        }
    };
    Ok((config, tls))
}
