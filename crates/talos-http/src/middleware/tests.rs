//! The request context: abandoned requests are counted as 499; a client that closes its
//! connection mid-request is noticed (`disconnect`) while its handler still runs to the end.

use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::InFlight;

fn in_flight(path: &str) -> InFlight {
    InFlight {
        start: Instant::now(),
        method: actix_web::http::Method::POST,
        uri: path.parse().expect("a request path"),
        span: tracing::Span::none(),
        log: true,
        done: false,
    }
}

/// `http_requests_total` series as (route, code) → count.
fn requests(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, String, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, _, _, _)| k.key().name() == "http_requests_total")
        .map(|(k, _, _, v)| {
            let label = |n: &str| {
                k.key()
                    .labels()
                    .find(|l| l.key() == n)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            let DebugValue::Counter(n) = v else {
                panic!("http_requests_total is a counter")
            };
            (label("route"), label("code"), n)
        })
        .collect()
}

#[test]
fn an_abandoned_request_counts_as_499_on_its_route() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        drop(in_flight("/v2alpha1/admin/apiKeys:verify"));
        drop(in_flight(
            "/v2alpha1/admin/issuedApiKeys/0b0c7c1e-7d76-4d0e-9f0c-3c1a4b2c9d11",
        ));
        drop(in_flight("/no/such/route"));
        let mut finished = in_flight("/v2alpha1/admin/apiKeys:verify");
        finished.done();
        drop(finished);
    });
    let mut got = requests(&snapshotter);
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "/v2alpha1/admin/apiKeys:verify".to_string(),
                "499".to_string(),
                1
            ),
            (
                "/v2alpha1/admin/issuedApiKeys/{key_id:[^/:]+}".to_string(),
                "499".to_string(),
                1
            ),
            ("unmatched".to_string(), "499".to_string(), 1),
        ],
        "a request answered normally is counted by the middleware, not by the guard"
    );
}

#[actix_web::test]
async fn a_client_that_goes_away_is_answered_499_and_its_handler_still_finishes() {
    use tokio::sync::{mpsc, oneshot};
    type Signals = std::sync::Mutex<
        Option<(
            oneshot::Sender<()>,
            oneshot::Receiver<()>,
            oneshot::Sender<()>,
        )>,
    >;
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let (finished_tx, finished_rx) = oneshot::channel();
    let signals: web::Data<Signals> = web::Data::new(std::sync::Mutex::new(Some((
        started_tx,
        release_rx,
        finished_tx,
    ))));
    // What the surface (the request context inside it) answered, seen from outside it.
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<u16>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let status_tx = status_tx.clone();
        App::new()
            .app_data(signals.clone())
            .wrap(crate::surface::Surface)
            .wrap(actix_web::middleware::from_fn(
                move |req, next: actix_web::middleware::Next<_>| {
                    let status_tx = status_tx.clone();
                    async move {
                        let res = next.call(req).await;
                        let status = match &res {
                            Ok(r) => r.status().as_u16(),
                            Err(e) => e.as_response_error().status_code().as_u16(),
                        };
                        let _ = status_tx.send(status);
                        res
                    }
                },
            ))
            .route(
                "/slow",
                web::get().to(|signals: web::Data<Signals>| async move {
                    let taken = signals.lock().unwrap().take();
                    let Some((started, release, finished)) = taken else {
                        return HttpResponse::Ok().finish();
                    };
                    let _ = started.send(());
                    let _ = release.await;
                    let _ = finished.send(());
                    HttpResponse::Ok().finish()
                }),
            )
    })
    .on_connect(crate::disconnect::on_connect)
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    started_rx.await.expect("the handler started");
    drop(client);
    // Generous bounds on events, not measurements: without them a regression would hang.
    let status = tokio::time::timeout(Duration::from_secs(30), status_rx.recv()).await;
    assert_eq!(status.ok().flatten(), Some(499), "answered as cancelled");
    let _ = release_tx.send(());
    let finished = tokio::time::timeout(Duration::from_secs(30), finished_rx).await;
    handle.stop(false).await;
    assert!(
        matches!(finished, Ok(Ok(()))),
        "the handler ran to its end in the background"
    );
}

/// The caller's id is kept when it is 1..=128 visible ASCII characters; anything else is
/// replaced by a fresh UUID v4 (a new one each time).
#[test]
fn request_ids_kept_or_replaced() {
    use actix_web::http::header::HeaderValue;
    let kept = ["abc", "req-1:2/3", &"x".repeat(128)];
    for id in kept {
        let v = HeaderValue::from_str(id).unwrap();
        assert_eq!(super::request_id(Some(&v)), v, "{id}");
    }
    let replaced = [
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_static("has space")),
        Some(HeaderValue::from_str(&"x".repeat(129)).unwrap()),
        Some(HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()),
        None,
    ];
    for given in replaced {
        let a = super::request_id(given.as_ref());
        let b = super::request_id(given.as_ref());
        let text = a.to_str().unwrap();
        let parsed = uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.get_version_num(), 4, "{given:?}");
        assert_eq!(
            text,
            parsed.hyphenated().to_string(),
            "lower-case, hyphenated"
        );
        assert_ne!(a, b, "a fresh id each time");
    }
}
