//! Starting a service's HTTP server the same way everywhere: bind (port 0 picks a free port and
//! the real one is reported), the shared extractor configuration, the service's routes, its
//! OpenAPI document and docs page, and a JSON 404 for unknown routes.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::error::{configure_extractors, not_found};

/// A bound, running-when-awaited HTTP server.
#[expect(missing_debug_implementations, reason = "actix's Server is not Debug")]
pub struct Service {
    port: u16,
    server: Server,
}

impl Service {
    /// Binds `host:port` and builds the server; `routes` registers the service's handlers and
    /// state (it is called once per worker).
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
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .configure(|cfg| configure_extractors(cfg, json_limit))
                .configure(routes.clone())
                .service(crate::openapi::docs(spec.clone()))
                .default_service(web::to(not_found))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        tracing::info!(service = name, port, "Listening.");
        Ok(Self { port, server })
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
