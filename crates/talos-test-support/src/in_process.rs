//! The actix application in-process, for `actix_web::test`: the configuration a [`Builder`]
//! renders, loaded as talos-http loads it (the domain's sections and `serve`), a
//! [`Service`] on it, and the [`AppState`] the server binary would assemble, with test build info.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::web;
use talos_core::Service;
use talos_core::config::{ConfigError, Sections, Tree, load_tree_str};
use talos_http::admin_tokens::AdminTokens;
use talos_http::config::ServeConfig;
use talos_http::{Access, AppState, BuildInfo, ClientIpSource, Limits};

use crate::Builder;

/// The top-level sections talos-http adds to the domain's: `serve`.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSections {
    pub serve: ServeConfig,
}

impl Sections for HttpSections {
    fn validate(&self) -> Result<Vec<String>, ConfigError> {
        self.serve.validate()?;
        Ok(Vec::new())
    }
}

/// The configuration an in-process application is built from.
pub type HttpConfig = Tree<HttpSections>;

impl Builder {
    /// The configuration, loaded as the server loads a file (no environment).
    pub fn http_config(&self) -> HttpConfig {
        load_tree_str::<HttpSections>(&self.yaml(), "test.yaml", &BTreeMap::new())
            .unwrap_or_else(|e| panic!("the test configuration does not load: {e}"))
            .0
    }

    /// The state the application serves from: a service on the configuration, its `serve`
    /// settings (admin tokens, limits), build info `test`, everything else at its default.
    /// Suites change single fields with `AppState { cors, ..state }`.
    pub async fn app_state(&self) -> AppState {
        let config = self.http_config();
        let service = Service::from_config(&config.core)
            .await
            .unwrap_or_else(|e| panic!("the test service does not start: {e}"));
        AppState {
            service: Arc::new(service),
            build: BuildInfo {
                version: "test".into(),
                commit: "c".into(),
                build_time: "t".into(),
                config_hash: "h".into(),
            },
            client_ip_source: ClientIpSource::RemoteAddr.into(),
            trust_forwarded_host: false,
            exclude_health_from_log: false.into(),
            metrics: None,
            cors: Default::default(),
            access: Access::default()
                .with_admin_tokens(AdminTokens::new(&config.app.serve.http.admin_auth.tokens)),
            limits: Limits::from_config(&config.app.serve.http),
            gateway_failures: talos_http::FailureLimit::from_config(
                &config.app.serve.http.gateway.failure_limit,
            ),
            draining: Default::default(),
        }
    }

    /// [`app_state`](Self::app_state) as `talos_http::app` takes it.
    pub async fn state(&self) -> web::Data<AppState> {
        web::Data::new(self.app_state().await)
    }
}
