//! The SSRF guard of webhook delivery: subscribers choose the URL, so without a guard anyone
//! with a token could make the daemon POST to its own loopback services, the cloud metadata
//! endpoint (169.254.169.254) or the farm's private network. Targets are checked when a
//! subscription is made and again at every delivery, on the addresses the name resolves to
//! *then* (a custom resolver), so DNS rebinding does not get around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// shared, reserved, documentation, multicast, ...).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10 carrier-grade NAT (shared address space)
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15 benchmarking
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4 reserved
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // 64:ff9b::/96 NAT64: judge the embedded IPv4 address.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local
        || (seg[0] & 0xfe00) == 0xfc00
        // fe80::/10 link-local
        || (seg[0] & 0xffc0) == 0xfe80
        // 2001:db8::/32 documentation
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        // ::/96 IPv4-compatible (deprecated) and other all-zero prefixes
        || seg[0..6] == [0, 0, 0, 0, 0, 0])
}

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a URL: {0}")]
    NotUrl(String),
    #[error("only http and https targets are allowed")]
    Scheme,
    #[error("credentials in the URL are not allowed (use the signing secret)")]
    Credentials,
    #[error("{0} is a private, loopback or reserved address (set webhooks.allow_private_targets to allow it)")]
    Private(IpAddr),
    #[error("{host} does not resolve: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{host} resolves only to private, loopback or reserved addresses (set webhooks.allow_private_targets to allow it)")]
    PrivateName { host: String },
}

/// Parses a target URL and checks what it names, without resolving.
pub fn parse_target(url: &str) -> Result<Url, TargetError> {
    let u = Url::parse(url).map_err(|e| TargetError::NotUrl(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if u.host_str().is_none_or(|h| h.is_empty()) {
        return Err(TargetError::NotUrl("no host".into()));
    }
    Ok(u)
}

/// The literal IP of a URL's host, if it is one.
pub fn literal_ip(u: &Url) -> Option<IpAddr> {
    // host_str brackets IPv6 literals ("[::1]").
    u.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Checks a target as a subscription is made: scheme, literal address, and what the name
/// resolves to now (checked again at delivery).
pub async fn check_target(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let u = parse_target(url)?;
    if allow_private {
        return Ok(u);
    }
    if let Some(ip) = literal_ip(&u) {
        return if is_public(ip) {
            Ok(u)
        } else {
            Err(TargetError::Private(ip))
        };
    }
    let host = u.host_str().unwrap_or_default().to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| TargetError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.iter().any(|a| is_public(a.ip())) {
        Ok(u)
    } else {
        Err(TargetError::PrivateName { host })
    }
}

/// A resolver for the delivery client that only returns public addresses.
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(TargetError::PrivateName { host });
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(s.parse().unwrap()), "{s}");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(s.parse().unwrap()), "{s}");
        }
    }

    #[tokio::test]
    async fn targets_are_checked_unless_private_ones_are_allowed() {
        assert_eq!(
            check_target("http://127.0.0.1:8080/hook", false).await,
            Err(TargetError::Private("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            check_target("http://[::1]/hook", false).await,
            Err(TargetError::Private("::1".parse().unwrap()))
        );
        assert!(matches!(
            check_target("http://localhost:9/hook", false).await,
            Err(TargetError::PrivateName { .. }) | Err(TargetError::Resolve { .. })
        ));
        assert_eq!(
            check_target("ftp://8.8.8.8/x", false).await,
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_target("https://u:p@8.8.8.8/x", false).await,
            Err(TargetError::Credentials)
        );
        assert!(check_target("https://8.8.8.8/hook", false).await.is_ok());
        assert!(check_target("http://127.0.0.1:8080/hook", true)
            .await
            .is_ok());
    }
}
