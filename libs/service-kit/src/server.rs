//! Starting a service's HTTP server the same way everywhere: bind (port 0 picks a free port and
//! the real one is reported), the shared extractor configuration, the service's routes, its
//! OpenAPI document and docs page, `/metrics` with per-route request metrics, and a JSON 404 for
//! unknown routes.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::error::{configure_extractors, not_found};
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
        let spec = crate::openapi::with_operational_paths(spec);
        let app_metrics = metrics.clone();
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_metrics.clone())
                .wrap(from_fn(crate::metrics::record))
                .configure(|cfg| configure_extractors(cfg, json_limit))
                .route("/metrics", web::get().to(crate::metrics::serve))
                .configure(routes.clone())
                .service(crate::openapi::docs(spec.clone()))
                .default_service(web::to(not_found))
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
