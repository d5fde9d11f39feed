//! Where a forwarded delivery goes: `ORIGIN_URL` joined with the request's path and
//! query, or without `ORIGIN_URL` the request's own URL (route mode).
//!
//! Plain string work on URLs the runtime has already parsed and serialized: linking
//! the `url` crate's parser (and its IDNA tables) would add about 100 KB to the Worker.

use crate::error::TargetError;

/// The var naming the origin; without it the Worker forwards to the request's own URL.
pub const ORIGIN_VAR: &str = "ORIGIN_URL";

/// The URL to forward to. `origin` is the `ORIGIN_URL` var, `request_url` the URL
/// the runtime gives for the request.
pub fn resolve(origin: Option<&str>, request_url: &str) -> Result<String, TargetError> {
    let (authority, path_and_query) =
        split_url(request_url).ok_or_else(|| TargetError::RequestUrl(request_url.to_string()))?;
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) else {
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        if host.ends_with(".workers.dev") {
            return Err(TargetError::CallsItself);
        }
        return Ok(request_url.to_string());
    };
    let scheme_ok = ["http://", "https://"].iter().any(|s| {
        origin
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    let valid = scheme_ok
        && split_url(origin).is_some_and(|(host, _)| !host.is_empty())
        && !origin.contains(['?', '#'])
        && !origin.contains(|c: char| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(TargetError::OriginUrl);
    }
    Ok(format!("{}{path_and_query}", origin.trim_end_matches('/')))
}

/// `scheme://authority/path?query` → (authority, `/path?query`), without a fragment.
fn split_url(url: &str) -> Option<(&str, String)> {
    let (_, rest) = url.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(at);
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Some((authority, path_and_query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let cases = [
            (
                "https://hooks.example.com/persona?x=1",
                "hooks.example.com",
                "/persona?x=1",
            ),
            ("http://127.0.0.1:8081", "127.0.0.1:8081", "/"),
            ("http://127.0.0.1:8081/", "127.0.0.1:8081", "/"),
            ("http://h?q=1#frag", "h", "/?q=1"),
            (
                "https://u@h.workers.dev:443/a/b#f",
                "u@h.workers.dev:443",
                "/a/b",
            ),
            ("https:///nohost", "", "/nohost"),
        ];
        for (url, authority, path) in cases {
            assert_eq!(split_url(url), Some((authority, path.to_string())), "{url}");
        }
        assert_eq!(split_url("no-scheme"), None);
    }

    #[test]
    fn origin_url_takes_the_path_and_query() {
        let request = "https://hooks.example.com/persona?a=1&b=two#f";
        let cases = [
            (
                "http://127.0.0.1:8081",
                "http://127.0.0.1:8081/persona?a=1&b=two",
            ),
            (
                " https://o.example/base/ ",
                "https://o.example/base/persona?a=1&b=two",
            ),
            ("HTTPS://o.example", "HTTPS://o.example/persona?a=1&b=two"),
        ];
        for (origin, want) in cases {
            assert_eq!(
                resolve(Some(origin), request).as_deref(),
                Ok(want),
                "{origin}"
            );
        }
        for bad in [
            "ftp://127.0.0.1/",
            "https://",
            "https://o.example/?q=1",
            "https://o.example/#f",
            "https://o.example/a b",
            "o.example",
        ] {
            assert_eq!(
                resolve(Some(bad), request),
                Err(TargetError::OriginUrl),
                "{bad}"
            );
        }
    }

    #[test]
    fn route_mode_forwards_to_the_request_url_but_never_to_workers_dev() {
        let request = "https://hooks.example.com/persona?x=1";
        assert_eq!(resolve(None, request).as_deref(), Ok(request));
        assert_eq!(resolve(Some("  "), request).as_deref(), Ok(request));
        for own in [
            "https://persona-edge.me.workers.dev/hook",
            "https://u@X.WORKERS.DEV:443/hook",
        ] {
            assert_eq!(resolve(None, own), Err(TargetError::CallsItself), "{own}");
        }
        assert_eq!(
            resolve(None, "no-scheme"),
            Err(TargetError::RequestUrl("no-scheme".into()))
        );
    }
}
