//! What each path answers, and the status codes of what it does not:
//! `404` for a path it does not serve (with the ones it does), `405` for a
//! method other than `GET` or `HEAD`, `400` for a `debug=` it does not
//! know, `503` when the answer could not be had in time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

use super::metrics::{self, Format, Names};
use super::profile::{self, Debug};
use super::shared::Coalesce;
use super::{Answer, Failure};
use crate::state::StateHandle;
use crate::Config;

/// How long `/metrics` may wait for the state owner.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a metrics answer is served again (see [`Coalesce`]): at most
/// five scans of the task table a second, however fast requests come.
const METRICS_FRESH: Duration = Duration::from_millis(200);

/// How long a profile is served again: at most one dump a second for HTTP
/// clients, since each dump wakes every wrapped task of the program.
const PROFILE_FRESH: Duration = Duration::from_secs(1);

/// How long a profile may take beyond its dump timeout (symbolising the
/// first time a stack is seen reads the program's debuginfo).
const PROFILE_EXTRA: Duration = Duration::from_secs(30);

const INDEX: &str = "taskscope agent\n\
    /metrics               task metrics (Prometheus / OpenMetrics text)\n\
    /debug/pprof/tasks     task profile, gzipped profile.proto (also /debug/pprof/goroutine); ?debug=1 for text, ?debug=2 for every task\n";

/// The paths served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Index,
    Metrics,
    Profile,
}

impl Route {
    pub(crate) fn of(path: &str) -> Option<Route> {
        match path {
            "/" | "/debug/pprof" | "/debug/pprof/" => Some(Route::Index),
            "/metrics" => Some(Route::Metrics),
            // The second is where tools configured for Go services look.
            "/debug/pprof/tasks" | "/debug/pprof/goroutine" => Some(Route::Profile),
            _ => None,
        }
    }
}

/// The endpoint's state: where answers come from, and the renderings in flight.
pub(crate) struct App {
    config: Arc<Config>,
    state: StateHandle,
    names: Arc<Mutex<Names>>,
    /// By format, and whether gzipped.
    metrics: Coalesce<(Format, bool), Result<Bytes, Failure>>,
    profiles: Coalesce<Debug, Result<Answer, Failure>>,
}

impl App {
    pub(crate) fn new(config: Arc<Config>, state: StateHandle) -> App {
        App {
            config,
            state,
            names: Arc::new(Mutex::new(Names::default())),
            metrics: Coalesce::new(METRICS_FRESH),
            profiles: Coalesce::new(PROFILE_FRESH),
        }
    }

    /// The response to `request`. Never fails: every problem is a status.
    pub(crate) async fn answer<B>(&self, request: Request<B>) -> Response<Full<Bytes>> {
        let Some(route) = Route::of(request.uri().path()) else {
            let body = format!("not found: {}\n\n{INDEX}", request.uri().path());
            return respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", body);
        };
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                format!("method {} not allowed: use GET\n", request.method()),
            );
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let answer = match route {
            Route::Index => return respond(StatusCode::OK, "text/plain; charset=utf-8", INDEX),
            Route::Metrics => {
                let header = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
                let format = Format::from_accept(header(ACCEPT));
                // Prometheus asks for gzip: 10k tasks in 100 locations are
                // 72 KB of text, a few KB gzipped.
                let gzipped = accepts_gzip(header(ACCEPT_ENCODING));
                let body = self.metrics(format, gzipped).await;
                body.map(|body| Answer { body, content_type: format.content_type(), gzipped })
            }
            Route::Profile => match Debug::from_query(request.uri().query()) {
                Some(debug) => self.profile(debug).await,
                None => Err(Failure {
                    status: StatusCode::BAD_REQUEST,
                    message: "debug= takes 0 (the profile), 1 (grouped text) or 2 (every task)".into(),
                }),
            },
        };
        match answer {
            Ok(answer) => {
                let mut response = respond(StatusCode::OK, answer.content_type, answer.body);
                if route == Route::Metrics {
                    response.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
                }
                if answer.gzipped {
                    response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                response
            }
            Err(failure) => {
                let retry = failure.status == StatusCode::SERVICE_UNAVAILABLE;
                let mut response =
                    respond(failure.status, "text/plain; charset=utf-8", format!("{}\n", failure.message));
                if retry {
                    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                }
                response
            }
        }
    }

    async fn metrics(&self, format: Format, gzipped: bool) -> Result<Bytes, Failure> {
        let state = self.state.clone();
        let names = Arc::clone(&self.names);
        let top = self.config.metrics_locations;
        let render = async move {
            let (snapshot, totals) = tokio::time::timeout(METRICS_TIMEOUT, state.snapshot_with_totals())
                .await
                .map_err(|_| {
                    Failure::unavailable(format!("the agent's task table did not answer within {METRICS_TIMEOUT:?}"))
                })?
                .map_err(|e| Failure::unavailable(e.to_string()))?;
            let exposition = {
                let mut names = names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                metrics::exposition(&snapshot, &totals, &mut names, top)
            };
            drop(snapshot);
            let text =
                metrics::encode(exposition, format).map_err(|_| Failure::internal("cannot encode the metrics"))?;
            Ok(if gzipped { Bytes::from(gzip(text.as_bytes())) } else { Bytes::from(text) })
        };
        self.metrics
            .get((format, gzipped), || render.boxed())
            .await
            .unwrap_or_else(|| Err(Failure::internal("the metrics rendering failed")))
    }

    async fn profile(&self, debug: Debug) -> Result<Answer, Failure> {
        let state = self.state.clone();
        let config = Arc::clone(&self.config);
        let limit = config.dump_timeout + PROFILE_EXTRA;
        let render = async move {
            tokio::time::timeout(limit, profile::answer(&config, &state, debug))
                .await
                .unwrap_or_else(|_| Err(Failure::unavailable(format!("the task profile took longer than {limit:?}"))))
        };
        self.profiles
            .get(debug, || render.boxed())
            .await
            .unwrap_or_else(|| Err(Failure::internal("the profile failed")))
    }
}

/// Whether an `Accept-Encoding` value takes gzip (and not at `q=0`).
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.unwrap_or_default().split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 8), flate2::Compression::fast());
    // Writing to a `Vec` cannot fail.
    let _ = gz.write_all(bytes);
    gz.finish().unwrap_or_default()
}

/// A response with `body`, never cached (every answer is of now).
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
