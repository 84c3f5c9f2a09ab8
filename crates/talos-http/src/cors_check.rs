//! Startup validation of `serve.http.cors`. actix-cors only reports a bad origin when each worker
//! builds its middleware, which kills the API workers while the metrics port keeps answering
//! `/health/alive`; checking here makes it a startup error naming the key instead.

use actix_web::http::header::HeaderName;
use actix_web::http::{Method, Uri};
use talos_core::config::ConfigError;

use crate::config::CorsConfig;

/// Every origin, method and header of an enabled CORS config must parse; nothing is dropped
/// silently.
pub fn check_cors(c: &CorsConfig) -> Result<(), ConfigError> {
    if !c.enabled {
        return Ok(());
    }
    let unusable = |key: &str, reason: String| ConfigError::Unusable {
        key: format!("serve.http.cors.{key}"),
        reason,
    };
    for o in c.allowed_origins.iter().filter(|o| o.as_str() != "*") {
        let ok = o.parse::<Uri>().is_ok_and(|u| {
            u.scheme().is_some()
                && u.host().is_some()
                && u.path_and_query().is_none_or(|p| p == "/")
        });
        if !ok || o.ends_with('/') {
            return Err(unusable(
                "allowed_origins",
                format!("{o:?} is not an origin (scheme://host[:port], or \"*\")"),
            ));
        }
    }
    for m in &c.allowed_methods {
        m.parse::<Method>()
            .map_err(|_| unusable("allowed_methods", format!("{m:?} is not an HTTP method")))?;
    }
    for (key, list) in [
        ("allowed_headers", &c.allowed_headers),
        ("exposed_headers", &c.exposed_headers),
    ] {
        for h in list {
            h.parse::<HeaderName>()
                .map_err(|_| unusable(key, format!("{h:?} is not a header name")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origins(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            enabled: true,
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..CorsConfig::default()
        }
    }

    #[test]
    fn origins() {
        assert!(check_cors(&CorsConfig::default()).is_ok());
        for good in [
            &["*"][..],
            &["https://app.example.com", "http://localhost:3000"],
        ] {
            assert!(check_cors(&with_origins(good)).is_ok(), "{good:?}");
        }
        for bad in [
            "not an origin",
            "app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/",
            "",
        ] {
            let err = check_cors(&with_origins(&[bad])).unwrap_err().to_string();
            assert!(err.contains("serve.http.cors.allowed_origins"), "{err}");
        }
        // Disabled: not checked (the values have no effect).
        let mut off = with_origins(&["not an origin"]);
        off.enabled = false;
        assert!(check_cors(&off).is_ok());
        let mut m = with_origins(&["*"]);
        m.allowed_methods = vec!["GET".into(), "BAD METHOD".into()];
        assert!(
            check_cors(&m)
                .unwrap_err()
                .to_string()
                .contains("allowed_methods")
        );
        let mut h = with_origins(&["*"]);
        h.allowed_headers = vec!["bad header".into()];
        assert!(
            check_cors(&h)
                .unwrap_err()
                .to_string()
                .contains("allowed_headers")
        );
    }
}
