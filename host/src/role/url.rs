//! URLs as `eddy:HttpRequest` sees them.
//!
//! A request's URL is reduced to one canonical form, the one the connection
//! will use: lower-case scheme and host, the host's trailing dot dropped, IPv4
//! in dotted decimal whatever way it was written (`0x7f.1` is `127.0.0.1`, as the
//! resolver reads it), IPv6 in its shortest form, the port always written, the
//! path's `.` and `..` segments resolved and its needlessly escaped characters
//! unescaped. A URL with user info (`http://a.example.com@127.0.0.1/`) or a host
//! that cannot be read is refused outright.
//!
//! A policy's URL pattern is matched part by part, so a wildcard never crosses
//! from one part into the next: scheme, host (where `*` never matches `:`),
//! port (a pattern without one means the scheme's default, `:*` any) and path
//! with query. A pattern without `://`, such as `*`, is matched against the
//! whole canonical URL.

use super::wildcard::wildcard_match;

/// A request's URL in the parts a grant is checked on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl {
    pub scheme: String,
    /// Lower case; `[...]` around an IPv6 address.
    pub host: String,
    pub port: u16,
    /// The path and query, normalised; at least `/`.
    pub path: String,
}

/// Why a URL is refused before any grant is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRejected {
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries user info before its host (`user@host`)")]
    UserInfo,
    #[error("the URL's host {0:?} is not a valid host name or address")]
    BadHost(String),
    #[error("the URL's scheme {0:?} is not http or https")]
    Scheme(String),
}

impl RequestUrl {
    pub fn from_uri(uri: &http::Uri) -> Result<RequestUrl, UrlRejected> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(UrlRejected::Scheme(scheme)),
        };
        let authority = uri.authority().ok_or(UrlRejected::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlRejected::UserInfo);
        }
        let host = canonical_host(authority.host())?;
        let port = authority.port_u16().unwrap_or(default_port);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(RequestUrl { scheme, host, port, path: normalise_path(path) })
    }

    /// The resource a policy is evaluated on, and the audit line shows:
    /// `scheme://host:port/path?query`.
    pub fn resource(&self) -> String {
        format!("{}://{}:{}{}", self.scheme, self.host, self.port, self.path)
    }

    /// Reads back what [`RequestUrl::resource`] wrote.
    fn parse_resource(resource: &str) -> Option<RequestUrl> {
        let (scheme, rest) = resource.split_once("://")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let (host, port) = authority.rsplit_once(':')?;
        Some(RequestUrl { scheme: scheme.to_owned(), host: host.to_owned(), port: port.parse().ok()?, path: path.to_owned() })
    }
}

/// Whether a `Resource` pattern of an `eddy:HttpRequest` statement matches a
/// canonical request URL ([`RequestUrl::resource`]).
pub fn url_pattern_matches(pattern: &str, resource: &str) -> bool {
    let Some((scheme_pattern, rest)) = pattern.split_once("://") else {
        return wildcard_match(pattern, resource, false);
    };
    let Some(url) = RequestUrl::parse_resource(resource) else { return false };
    let (authority, path_pattern) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host_pattern, port_pattern) = split_port(authority);
    let host_pattern = host_pattern.to_ascii_lowercase();
    let host_pattern = host_pattern.strip_suffix('.').unwrap_or(&host_pattern);
    let port_matches = match port_pattern {
        None => url.port == default_port(&url.scheme),
        Some("*") => true,
        Some(port) => port.parse::<u16>().is_ok_and(|p| p == url.port),
    };
    wildcard_match(scheme_pattern, &url.scheme, true)
        && host_matches(host_pattern, &url.host)
        && port_matches
        && wildcard_match(path_pattern, &url.path, false)
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" { 80 } else { 443 }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`: the port is what follows the
/// last `:` outside brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let after_brackets = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[after_brackets..].rfind(':') {
        Some(i) => (&authority[..after_brackets + i], Some(&authority[after_brackets + i + 1..])),
        None => (authority, None),
    }
}

/// A host pattern's wildcards match within the host only: `*` and `?` never
/// stand for `:` (so `*` matches no IPv6 literal; name it).
fn host_matches(pattern: &str, host: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == host;
    }
    !host.contains(':') && wildcard_match(pattern, host, true)
}

/// The host as the connection will reach it.
fn canonical_host(host: &str) -> Result<String, UrlRejected> {
    let bad = || UrlRejected::BadHost(host.to_owned());
    let lower = host.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let address: std::net::Ipv6Addr = inner.parse().map_err(|_| bad())?;
        // An IPv4-mapped address reaches the IPv4 host.
        return Ok(match address.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{address}]"),
        });
    }
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(bad());
    }
    // A name whose last label is a number is an IPv4 address, in any of the
    // forms the resolver takes (WHATWG's rule).
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x")) {
        return parse_ipv4(name).map(|a| a.to_string()).ok_or_else(bad);
    }
    Ok(name.to_owned())
}

/// `inet_aton`'s IPv4 forms: one to four parts, each decimal, octal (`0`
/// first) or hexadecimal (`0x` first), the last filling the remaining bytes.
fn parse_ipv4(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<u64> = text.split('.').map(parse_ipv4_part).collect::<Option<_>>()?;
    let (last, first) = parts.split_last()?;
    if parts.len() > 4 || first.iter().any(|&p| p > 255) || *last >= 1u64 << (8 * (5 - parts.len())) {
        return None;
    }
    let mut value = *last;
    for (i, part) in first.iter().enumerate() {
        value += part << (8 * (3 - i));
    }
    u32::try_from(value).ok().map(std::net::Ipv4Addr::from)
}

fn parse_ipv4_part(part: &str) -> Option<u64> {
    if let Some(hex) = part.strip_prefix("0x") {
        return if hex.is_empty() { Some(0) } else { u64::from_str_radix(hex, 16).ok() };
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok();
    }
    part.parse().ok()
}

/// Resolves `.` and `..` in the path (RFC 3986 §5.2.4) after unescaping the
/// characters that need no escape (so `%2e%2e` is `..`); the query is kept as is.
fn normalise_path(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i..])),
        None => (path_and_query, None),
    };
    let path = unescape_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *segment {
            "." => {
                if last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            other => segments.push(other),
        }
    }
    format!("/{}{}", segments.join("/"), query.unwrap_or(""))
}

/// `%41` is `A`: escapes of letters, digits and `-._~` are undone, the others
/// kept, with their hex digits in upper case.
fn unescape_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(value) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                out.push(value as char);
            } else {
                out.push_str(&format!("%{value:02X}"));
            }
            i += 3;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(url: &str) -> Result<String, UrlRejected> {
        let uri: http::Uri = url.parse().expect("uri");
        RequestUrl::from_uri(&uri).map(|u| u.resource())
    }

    fn allowed(pattern: &str, url: &str) -> bool {
        canonical(url).is_ok_and(|resource| url_pattern_matches(pattern, &resource))
    }

    #[test]
    fn urls_are_reduced_to_what_the_connection_reaches() {
        for (url, expected) in [
            ("HTTP://API.Example.com:8080/v1/Items?x=1", "http://api.example.com:8080/v1/Items?x=1"),
            ("https://example.com", "https://example.com:443/"),
            ("http://x.example.com./a", "http://x.example.com:80/a"),
            ("http://0x7f.1/", "http://127.0.0.1:80/"),
            ("http://2130706433/", "http://127.0.0.1:80/"),
            ("http://0177.0.0.1/", "http://127.0.0.1:80/"),
            ("http://[0:0::1]:81/", "http://[::1]:81/"),
            ("http://[::ffff:127.0.0.1]/", "http://127.0.0.1:80/"),
            ("http://a.example.com/v1/../admin/./x", "http://a.example.com:80/admin/x"),
            ("http://a.example.com/v1/%2e%2e/admin", "http://a.example.com:80/admin"),
            ("http://a.example.com/%7euser/%2f", "http://a.example.com:80/~user/%2F"),
        ] {
            assert_eq!(canonical(url).as_deref(), Ok(expected), "{url}");
        }
        assert_eq!(canonical("http://x.example.com@127.0.0.1/"), Err(UrlRejected::UserInfo));
        assert!(matches!(canonical("http://256.1.1.1/"), Err(UrlRejected::BadHost(_))));
        assert!(matches!(canonical("ftp://example.com/"), Err(UrlRejected::Scheme(_))));
    }

    #[test]
    fn a_wildcard_stays_in_its_part() {
        let p = "http://*.example.com/*";
        assert!(allowed(p, "http://api.example.com/anything"));
        assert!(allowed(p, "http://API.EXAMPLE.COM./anything"), "case and the trailing dot");
        // The classic bypasses.
        assert!(!allowed(p, "http://127.0.0.1:8080/.example.com/anything"), "host into path");
        assert!(!allowed(p, "http://127.0.0.1/.example.com/anything"));
        assert!(!allowed(p, "http://x.example.com@127.0.0.1/"), "user info");
        assert!(!allowed(p, "http://x.example.com:8080/"), "another port");
        assert!(!allowed(p, "http://x.example.com.evil.net/"), "a suffix");
        assert!(!allowed(p, "https://x.example.com/"), "another scheme");
        assert!(!allowed(p, "http://[::1]/x.example.com"), "IPv6");
        assert!(allowed("http://*.example.com:*/*", "http://x.example.com:8080/"));
        assert!(allowed("http://[::1]:8080/*", "http://[0::1]:8080/a"));
        assert!(!allowed("http://*/*", "http://[::1]/"), "* never matches an IPv6 literal's colons");
        assert!(allowed("*", "http://[::1]/"), "a pattern that is not a URL matches the whole");
        // Paths: case-sensitive, dot segments resolved first.
        assert!(allowed("https://api.example.com/v1/*", "https://api.example.com/v1/items"));
        assert!(!allowed("https://api.example.com/v1/*", "https://api.example.com/V1/items"));
        assert!(!allowed("https://api.example.com/v1/*", "https://api.example.com/v1/../admin"));
        assert!(!allowed("https://api.example.com/v1/*", "https://api.example.com/v1/%2e%2e/admin"));
        assert!(!allowed("https://api.example.com", "https://api.example.com/x"), "no path: `/` only");
        assert!(allowed("https://api.example.com", "https://api.example.com"));
        // A deny list sees through the spellings of an address.
        for spelling in ["http://169.254.169.254/", "http://0xa9fea9fe/", "http://0251.0376.0251.0376/", "http://[::ffff:169.254.169.254]/"] {
            assert!(allowed("http://169.254.169.254/*", spelling), "{spelling}");
        }
    }
}
