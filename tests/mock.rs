//! The paths a real API server rarely shows, against a mock service (as
//! kube's own mock tests do): endless conflicts, a missing `Date` header, 404
//! on create, an expired continue token, a server that never answers, a
//! retried write that had committed, a watch that fails to open.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::time::Duration;

use celers_kube_lease::{lease_name, Error, KubeLeaseLockBackend};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::json;
use tower_test::mock::{self, Handle};

/// What every response of the mock says the server's clock reads.
const DATE: &str = "Thu, 26 Nov 2026 06:00:00 GMT";
const KEY: &str = "nightly-report";

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn backend(
    configure: impl FnOnce(kube::Client) -> KubeLeaseLockBackend,
) -> (KubeLeaseLockBackend, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (configure(client), handle)
}

fn defaults(client: kube::Client) -> KubeLeaseLockBackend {
    KubeLeaseLockBackend::builder(client)
        .namespace("ns")
        .sweep_interval(None)
        .build()
        .expect("valid settings")
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::DATE, DATE)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("valid response")
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    respond(
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": reason, "message": reason, "code": code.as_u16() }),
    )
}

/// A Lease of this crate for `key`, held by `holder` from the mock's `Date`
/// for 30 s.
fn lease(key: &str, holder: &str, resource_version: &str) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(key),
            "namespace": "ns",
            "uid": "uid-1",
            "resourceVersion": resource_version,
            "labels": {
                "app.kubernetes.io/managed-by": "celers-kube-lease",
                "celers.io/lock-owner": holder,
            },
            "annotations": { "celers.io/lock-key": key },
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 30,
            "acquireTime": "2026-11-26T06:00:00.000000Z",
            "renewTime": "2026-11-26T06:00:00.000000Z",
            "leaseTransitions": 0,
        },
    })
}

/// Serves the next request with `answer`, after checking its method.
async fn serve(handle: &mut MockHandle, method: Method, answer: Response<Body>) -> Request<Body> {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "{}", request.uri());
    send.send_response(answer);
    request
}

#[tokio::test]
async fn writes_rejected_without_a_change_of_holder_end_in_contended() {
    let (backend, mut handle) = backend(|client| {
        KubeLeaseLockBackend::builder(client)
            .namespace("ns")
            .conflict_retries(2)
            .sweep_interval(None)
            .build()
            .expect("valid settings")
    });
    let server = tokio::spawn(async move {
        // The holder renews; something keeps editing the Lease without
        // changing its holder or term, so every update conflicts.
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "me", "1")),
        )
        .await;
        for version in 2..=4 {
            serve(
                &mut handle,
                Method::PUT,
                status(StatusCode::CONFLICT, "Conflict"),
            )
            .await;
            let relabelled = lease(KEY, "me", &version.to_string());
            serve(
                &mut handle,
                Method::GET,
                respond(StatusCode::OK, relabelled),
            )
            .await;
        }
    });
    match backend.renew(KEY, "me", 30).await {
        Err(Error::Contended { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected Contended after 2 retries, got {other:?}"),
    }
    server.await.expect("server");
}

#[tokio::test]
async fn a_write_lost_to_another_owner_is_an_answer() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "me", "1")),
        )
        .await;
        serve(
            &mut handle,
            Method::PUT,
            status(StatusCode::CONFLICT, "Conflict"),
        )
        .await;
        // Meanwhile the Lease changed hands (a hand edit, or a takeover).
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "other", "2")),
        )
        .await;
    });
    assert!(!backend.renew(KEY, "me", 30).await.expect("an answer"));
    server.await.expect("server");
}

#[tokio::test]
async fn a_create_lost_to_another_owner_is_an_answer_after_one_read() {
    // Even with no retries allowed: the 409 and the read after it show that
    // another owner created the Lease after our read found none, so it held
    // the lock at that moment.
    let (backend, mut handle) = backend(|client| {
        KubeLeaseLockBackend::builder(client)
            .namespace("ns")
            .conflict_retries(0)
            .sweep_interval(None)
            .build()
            .expect("valid settings")
    });
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        serve(
            &mut handle,
            Method::POST,
            status(StatusCode::CONFLICT, "AlreadyExists"),
        )
        .await;
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "other", "2")),
        )
        .await;
        // Nothing more: the lost create is not retried.
        nothing_more(&mut handle).await;
    });
    assert!(!backend.try_acquire(KEY, "me", 30).await.expect("an answer"));
    server.await.expect("server");
}

#[tokio::test]
async fn a_response_without_a_date_header_is_an_error() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        let answer = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(b"{}".to_vec()))
            .expect("valid response");
        serve(&mut handle, Method::GET, answer).await;
    });
    match backend.try_acquire(KEY, "me", 30).await {
        Err(Error::Unexpected { detail, target, .. }) => {
            assert!(detail.contains("Date"), "{detail}");
            assert_eq!(target.lease, Some(lease_name(KEY)));
        }
        other => panic!("expected an error about the clock, got {other:?}"),
    }
    server.await.expect("server");
}

#[tokio::test]
async fn not_found_on_create_is_an_error_not_a_race() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        // The namespace is gone: a create answers 404 too.
        serve(
            &mut handle,
            Method::POST,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
    });
    match backend.try_acquire(KEY, "me", 30).await {
        Err(Error::Api { status: 404, .. }) => {}
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    server.await.expect("server");
}

fn page(items: Vec<serde_json::Value>, continue_token: &str) -> Response<Body> {
    respond(
        StatusCode::OK,
        json!({ "kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                "metadata": { "continue": continue_token }, "items": items }),
    )
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_listing() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            page(vec![lease("a", "me", "1")], "token-1"),
        )
        .await;
        serve(
            &mut handle,
            Method::DELETE,
            status(StatusCode::OK, "Success"),
        )
        .await;
        let second = serve(
            &mut handle,
            Method::GET,
            status(StatusCode::GONE, "Expired"),
        )
        .await;
        assert!(second
            .uri()
            .query()
            .unwrap_or("")
            .contains("continue=token-1"));
        // From the first page again: "a" is gone, "b" is new.
        let restart = serve(
            &mut handle,
            Method::GET,
            page(vec![lease("b", "me", "3")], ""),
        )
        .await;
        assert!(!restart.uri().query().unwrap_or("").contains("continue="));
        serve(
            &mut handle,
            Method::DELETE,
            status(StatusCode::OK, "Success"),
        )
        .await;
    });
    assert_eq!(backend.release_all("me").await.expect("released"), 2);
    server.await.expect("server");
}

#[tokio::test]
async fn a_listing_that_keeps_failing_reports_what_it_deleted() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            page(vec![lease("a", "me", "1")], "token-1"),
        )
        .await;
        serve(
            &mut handle,
            Method::DELETE,
            status(StatusCode::OK, "Success"),
        )
        .await;
        let broken = status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        serve(&mut handle, Method::GET, broken).await;
    });
    match backend.release_all("me").await {
        Err(Error::Incomplete {
            deleted, source, ..
        }) => {
            assert_eq!(deleted, 1);
            assert_eq!(source.status(), Some(500));
        }
        other => panic!("expected Incomplete with the count, got {other:?}"),
    }
    server.await.expect("server");
}

#[tokio::test]
async fn a_guard_cut_off_says_so_by_its_deadline() {
    // TTL 3 s: the deadline is 3 s less the drift allowance and a tenth of
    // the TTL after the create was sent, whatever the unanswered renewals.
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        serve(
            &mut handle,
            Method::POST,
            respond(StatusCode::CREATED, lease(KEY, "me", "7")),
        )
        .await;
        // Renewals are taken and never answered: a partition.
        let mut pending = Vec::new();
        while let Some(request) = handle.next_request().await {
            pending.push(request);
        }
    });
    let started = std::time::Instant::now();
    let guard = backend
        .try_lock(KEY, "me", Duration::from_secs(3))
        .await
        .expect("try_lock")
        .expect("free");
    assert_eq!(guard.fencing_token().get(), 7);
    tokio::time::timeout(Duration::from_secs(5), guard.lost().cancelled())
        .await
        .expect("lost() fired");
    let after = started.elapsed();
    assert!(!guard.is_held());
    assert!(
        after >= Duration::from_millis(2_600) && after <= Duration::from_millis(2_800),
        "lost() after {after:?}, not at the deadline (2.697 s)"
    );
    drop(guard);
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out() {
    let (backend, mut handle) = backend(|client| {
        KubeLeaseLockBackend::builder(client)
            .namespace("ns")
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("valid settings")
    });
    let server = tokio::spawn(async move {
        // Take the request and never answer it.
        let (_request, _send) = handle.next_request().await.expect("a request");
        std::future::pending::<()>().await;
    });
    match backend.owner(KEY).await {
        Err(Error::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_secs(5)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    server.abort();
}

/// A backend whose client retries as kube's default client does (writes
/// answered 429, 503 or 504 are sent again).
fn retrying() -> (KubeLeaseLockBackend, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let service = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(
            kube::client::retry::RetryPolicy::server_retry(),
        ))
        .service(service);
    (defaults(kube::Client::new(service, "default")), handle)
}

/// The Lease a write sent, as the server would store it.
async fn stored(request: Request<Body>, resource_version: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let body = request
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let mut lease: serde_json::Value = serde_json::from_slice(&body).expect("a Lease");
    lease["metadata"]["uid"] = json!("uid-1");
    lease["metadata"]["namespace"] = json!("ns");
    lease["metadata"]["resourceVersion"] = json!(resource_version);
    lease
}

/// Asserts that no further request comes.
async fn nothing_more(handle: &mut MockHandle) {
    let next = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(
        next.is_err(),
        "unexpected request: {:?}",
        next.ok()
            .flatten()
            .map(|(request, _)| request.uri().clone())
    );
}

/// A write that commits but is answered 504; kube's client sends it again
/// and it is answered 409; the read after it finds what the write stored.
async fn committed_then_conflict(handle: &mut MockHandle, method: Method, version: &str) {
    let write = serve(
        handle,
        method.clone(),
        status(StatusCode::GATEWAY_TIMEOUT, "Timeout"),
    )
    .await;
    let lease = stored(write, version).await;
    serve(handle, method, status(StatusCode::CONFLICT, "Conflict")).await;
    serve(handle, Method::GET, respond(StatusCode::OK, lease)).await;
    nothing_more(handle).await;
}

/// A delete answered 404 and the read after it: the Lease is gone.
async fn delete_finds_the_lease_gone(handle: &mut MockHandle) {
    serve(
        handle,
        Method::DELETE,
        status(StatusCode::NOT_FOUND, "NotFound"),
    )
    .await;
    serve(
        handle,
        Method::GET,
        status(StatusCode::NOT_FOUND, "NotFound"),
    )
    .await;
    nothing_more(handle).await;
}

/// Issue 26, item 4: a create that committed, answered 504, retried by the
/// client and answered 409, is recognised as ours by one read.
#[tokio::test]
async fn a_create_retried_after_a_504_that_committed_is_ours() {
    let (backend, mut handle) = retrying();
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        // The create commits, but the answer is lost behind a gateway.
        committed_then_conflict(&mut handle, Method::POST, "7").await;
    });
    assert!(
        backend.try_acquire(KEY, "me", 30).await.expect("an answer"),
        "our own committed create was taken for a lost race"
    );
    server.await.expect("server");
}

/// Issue 26, item 4: the same for a renewal (PUT).
#[tokio::test]
async fn a_renewal_retried_after_a_504_that_committed_is_ours() {
    let (backend, mut handle) = retrying();
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "me", "1")),
        )
        .await;
        committed_then_conflict(&mut handle, Method::PUT, "2").await;
    });
    assert!(backend.renew(KEY, "me", 30).await.expect("an answer"));
    server.await.expect("server");
}

/// Issue 26, item 4, the delete variant: a release that committed, answered
/// 504, retried and answered 404, is a release.
#[tokio::test]
async fn a_release_retried_after_a_504_that_committed_is_a_release() {
    let (backend, mut handle) = retrying();
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "me", "1")),
        )
        .await;
        serve(
            &mut handle,
            Method::DELETE,
            status(StatusCode::GATEWAY_TIMEOUT, "Timeout"),
        )
        .await;
        delete_finds_the_lease_gone(&mut handle).await;
    });
    assert!(backend.release(KEY, "me").await.expect("an answer"));
    server.await.expect("server");
}

/// A release decided from what the backend remembers (its own acquire)
/// that finds the Lease gone was not this call's: others may have taken
/// and released the lock since. Found by the linearizability check of a
/// reliability run, where such a release answered `true` about 2 s after
/// the caller's lock had expired and two other owners had held it.
#[tokio::test]
async fn a_release_from_a_remembered_state_that_finds_the_lease_gone_is_no_release() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        let (create, send) = handle.next_request().await.expect("a create");
        assert_eq!(create.method(), Method::POST);
        send.send_response(respond(StatusCode::CREATED, stored(create, "2").await));
        // Later: the release deletes what it remembers, but the Lease is gone.
        delete_finds_the_lease_gone(&mut handle).await;
    });
    assert!(backend.try_acquire(KEY, "me", 30).await.expect("an answer"));
    assert!(
        !backend.release(KEY, "me").await.expect("an answer"),
        "a release that deleted nothing of this caller's said true"
    );
    server.await.expect("server");
}

/// A list of the one Lease `items` as of `resource_version`.
fn listed(items: Vec<serde_json::Value>, resource_version: &str) -> Response<Body> {
    respond(
        StatusCode::OK,
        json!({ "kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                "metadata": { "resourceVersion": resource_version }, "items": items }),
    )
}

/// A watch answer that sends `events` and ends.
fn events(events: &[serde_json::Value]) -> Response<Body> {
    let lines: String = events.iter().map(|event| format!("{event}\n")).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::DATE, DATE)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(lines.into_bytes()))
        .expect("valid response")
}

fn query(request: &Request<Body>) -> String {
    request.uri().query().unwrap_or("").to_owned()
}

/// `lock()` of `KEY` by "me" (TTL 30 s, wait 3 s), which must take it.
async fn locked(backend: &KubeLeaseLockBackend) -> celers_kube_lease::LockGuard {
    tokio::time::timeout(
        Duration::from_secs(5),
        backend.lock(KEY, "me", Duration::from_secs(30), Duration::from_secs(3)),
    )
    .await
    .expect("lock() returned")
    .expect("lock")
    .expect("the lock came free")
}

/// Issue 26, item 1: a waiter whose create lost to a rival that created and
/// deleted the Lease before the waiter watched must not sleep through the
/// free lock. It reads after the lost create and creates again.
#[tokio::test]
async fn a_waiter_whose_create_lost_to_a_created_and_deleted_lease_takes_the_lock() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        let list = serve(&mut handle, Method::GET, listed(vec![], "10")).await;
        assert!(query(&list).contains("fieldSelector"), "{}", query(&list));
        serve(
            &mut handle,
            Method::POST,
            status(StatusCode::CONFLICT, "AlreadyExists"),
        )
        .await;
        // The rival has already released it.
        serve(
            &mut handle,
            Method::GET,
            status(StatusCode::NOT_FOUND, "NotFound"),
        )
        .await;
        serve(
            &mut handle,
            Method::POST,
            respond(StatusCode::CREATED, lease(KEY, "me", "13")),
        )
        .await;
        // The guard's best-effort release when dropped.
        let _ = handle.next_request().await;
    });
    let guard = locked(&backend).await;
    assert_eq!(guard.fencing_token().get(), 13);
    drop(guard);
    server.await.expect("server");
}

/// Issue 26, item 1: after a lost create the waiter watches from the
/// version of the Lease that won, so its deletion is an event.
#[tokio::test]
async fn a_waiter_watches_from_the_version_of_the_lease_that_won() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(&mut handle, Method::GET, listed(vec![], "10")).await;
        serve(
            &mut handle,
            Method::POST,
            status(StatusCode::CONFLICT, "AlreadyExists"),
        )
        .await;
        serve(
            &mut handle,
            Method::GET,
            respond(StatusCode::OK, lease(KEY, "rival", "11")),
        )
        .await;
        let mut deleted = lease(KEY, "rival", "12");
        deleted["metadata"]["resourceVersion"] = json!("12");
        let watch = serve(
            &mut handle,
            Method::GET,
            events(&[json!({ "type": "DELETED", "object": deleted })]),
        )
        .await;
        assert!(query(&watch).contains("watch=true"), "{}", query(&watch));
        assert!(
            query(&watch).contains("resourceVersion=11"),
            "{}",
            query(&watch)
        );
        serve(
            &mut handle,
            Method::POST,
            respond(StatusCode::CREATED, lease(KEY, "me", "13")),
        )
        .await;
        let _ = handle.next_request().await;
    });
    let guard = locked(&backend).await;
    drop(guard);
    server.await.expect("server");
}

/// Issue 26, item 5: a watch that fails to open (503) is opened again from
/// the same version instead of ending the wait with an error; a waiter
/// that listed watches from the list's version.
#[tokio::test]
async fn a_watch_that_fails_to_open_is_opened_again() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            listed(vec![lease(KEY, "rival", "11")], "20"),
        )
        .await;
        let first = serve(
            &mut handle,
            Method::GET,
            status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        )
        .await;
        assert!(
            query(&first).contains("resourceVersion=20"),
            "{}",
            query(&first)
        );
        let mut deleted = lease(KEY, "rival", "21");
        deleted["metadata"]["resourceVersion"] = json!("21");
        let second = serve(
            &mut handle,
            Method::GET,
            events(&[json!({ "type": "DELETED", "object": deleted })]),
        )
        .await;
        assert!(
            query(&second).contains("resourceVersion=20"),
            "{}",
            query(&second)
        );
        serve(
            &mut handle,
            Method::POST,
            respond(StatusCode::CREATED, lease(KEY, "me", "22")),
        )
        .await;
        let _ = handle.next_request().await;
    });
    let guard = backend
        .lock(KEY, "me", Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("a failed watch open does not end the wait")
        .expect("the lock came free");
    drop(guard);
    server.await.expect("server");
}

/// Issue 26, item 5: a watch open that hangs does not hold `lock()` past
/// its wait (the request timeout is 10 s, the wait 1 s).
#[tokio::test]
async fn a_hanging_watch_open_does_not_outlast_the_wait() {
    let (backend, mut handle) = backend(defaults);
    let server = tokio::spawn(async move {
        serve(
            &mut handle,
            Method::GET,
            listed(vec![lease(KEY, "rival", "11")], "20"),
        )
        .await;
        let mut pending = Vec::new();
        while let Some(request) = handle.next_request().await {
            pending.push(request);
        }
    });
    let started = std::time::Instant::now();
    let outcome = backend
        .lock(KEY, "me", Duration::from_secs(30), Duration::from_secs(1))
        .await
        .expect("no error");
    assert!(outcome.is_none());
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "lock() took {took:?}");
    server.abort();
}
