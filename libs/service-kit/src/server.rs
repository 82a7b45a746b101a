//! Starting a service's HTTP server the same way everywhere: bind (port 0 picks a free port and
//! the real one is reported), the shared extractor configuration, the service's routes, its
//! OpenAPI document and docs page, `/metrics` with per-route request metrics, and a JSON 404 for
//! unknown routes (405 with `Allow` for a declared route called with an undeclared method).

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::error::{DeclaredRoutes, configure_extractors, unrouted};
use crate::internal_auth::InternalVerifier;
use crate::metrics::Metrics;

/// A bound, running-when-awaited HTTP server.
#[expect(missing_debug_implementations, reason = "actix's Server is not Debug")]
pub struct Service {
    port: u16,
    server: Server,
    metrics: Metrics,
}

impl Service {
    /// Binds `host:port` and builds the server; `routes` registers the service's handlers and
    /// state (it is called once per worker). The service gets a fresh [`Metrics`] registry with
    /// the standard HTTP metrics; use [`Service::start_with_metrics`] to add its own.
    pub fn start<F>(
        name: &'static str,
        host: &str,
        port: u16,
        json_limit: usize,
        spec: utoipa::openapi::OpenApi,
        routes: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        Self::start_with_metrics(
            name,
            host,
            port,
            json_limit,
            spec,
            Metrics::new(name),
            routes,
        )
    }

    /// [`Service::start`] with a registry the service created (and registered its own metrics
    /// on) beforehand. Handlers also find it with `req.app_data::<Metrics>()`.
    pub fn start_with_metrics<F>(
        name: &'static str,
        host: &str,
        port: u16,
        json_limit: usize,
        spec: utoipa::openapi::OpenApi,
        metrics: Metrics,
        routes: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        Self::build(name, host, port, json_limit, spec, metrics, None, routes)
    }

    /// [`Service::start_with_metrics`] for a service only other Sextant services may call:
    /// with a verifier, every route but the probes, `/metrics` and the API description answers
    /// `401 unauthorized` without a valid internal token (see [`crate::internal_auth`]). Without
    /// one (no `internal_token` configured: local development only; the chart and `sextant
    /// demo` always set one) anyone may call, and a warning says so at startup.
    #[expect(
        clippy::too_many_arguments,
        reason = "the start parameters plus the guard"
    )]
    pub fn start_guarded<F>(
        name: &'static str,
        host: &str,
        port: u16,
        json_limit: usize,
        spec: utoipa::openapi::OpenApi,
        metrics: Metrics,
        verifier: Option<InternalVerifier>,
        routes: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        if verifier.is_none() {
            tracing::warn!(
                service = name,
                "NO INTERNAL TOKEN CONFIGURED: this service accepts calls from anyone who can reach it. Set SEXTANT_<SERVICE>__INTERNAL_TOKEN (the Helm chart and `sextant demo` always do)."
            );
        }
        Self::build(
            name, host, port, json_limit, spec, metrics, verifier, routes,
        )
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the start parameters plus the guard"
    )]
    fn build<F>(
        name: &'static str,
        host: &str,
        port: u16,
        json_limit: usize,
        spec: utoipa::openapi::OpenApi,
        metrics: Metrics,
        verifier: Option<InternalVerifier>,
        routes: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let spec = crate::openapi::with_operational_paths(spec);
        let declared = web::Data::new(DeclaredRoutes::from_spec(&spec));
        let app_metrics = metrics.clone();
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_metrics.clone())
                .app_data(declared.clone())
                .configure(|cfg| {
                    if let Some(v) = &verifier {
                        cfg.app_data(v.clone());
                    }
                })
                // Inside the metrics middleware, so refused calls are counted (as 401s).
                .wrap(from_fn(crate::internal_auth::require))
                .wrap(from_fn(crate::metrics::record))
                .configure(|cfg| configure_extractors(cfg, json_limit))
                .route("/metrics", web::get().to(crate::metrics::serve))
                .configure(routes.clone())
                .service(crate::openapi::docs(spec.clone()))
                .default_service(web::to(unrouted))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        tracing::info!(service = name, port, "Listening.");
        Ok(Self {
            port,
            server,
            metrics,
        })
    }

    /// The service's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until Ctrl-C or SIGTERM, then drains in-flight requests and stops.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("Shutting down.");
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }
}

/// Completes on Ctrl-C, or on SIGTERM (what Kubernetes sends) on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            // No SIGTERM handler possible: Ctrl-C still works.
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
