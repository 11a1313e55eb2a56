//! Token control: one fetch across managers, the store before a refresh on 40001,
//! bounded retries, WeChat's 5-minute overlap, stable tokens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Barrier;
use wxpilot_wechat::{
    AccountCredentials, ApiClient, ApiError, InMemoryTokenStore, RedisTokenStore, TokenManager,
    TokenStore, UserList,
};

use crate::helpers::{self, APPID, SECRET, USER_GET};

/// Four managers (separate HTTP clients) call `user/get` at the same moment; returns the
/// tokens each used.
async fn four_calls_at_once(managers: &[Arc<TokenManager>]) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(managers.len()));
    let mut tasks = Vec::new();
    for m in managers {
        let m = Arc::clone(m);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let used = Mutex::new(String::new());
            let used_ref = &used;
            let list: UserList = m
                .call(|c, t| async move {
                    *used_ref.lock().unwrap() = t.clone();
                    c.user_list(&t, None).await
                })
                .await
                .expect("call succeeds");
            assert_eq!(list.total, 0);
            used.into_inner().unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("task finishes"));
    }
    tokens
}

async fn exactly_one_fetch_per_expiry(
    sim: &wxpilot_wechat_sim::SimHandle,
    managers: Vec<Arc<TokenManager>>,
) {
    // Empty store: four at once, one fetch.
    let first = four_calls_at_once(&managers).await;
    assert_eq!(sim.token_requests(APPID), 1);
    assert!(first.iter().all(|t| *t == first[0]), "{first:?}");
    assert_eq!(sim.current_token(APPID).as_deref(), Some(first[0].as_str()));

    // All four reach the refresh margin together (7200 s − 300 s): one more fetch.
    sim.advance(Duration::from_secs(7200 - 300 + 1));
    let second = four_calls_at_once(&managers).await;
    assert_eq!(sim.token_requests(APPID), 2);
    assert!(second.iter().all(|t| *t == second[0]), "{second:?}");
    assert_ne!(second[0], first[0]);

    // And past the real expiry, once more exactly one.
    sim.advance(Duration::from_secs(7200));
    let third = four_calls_at_once(&managers).await;
    assert_eq!(sim.token_requests(APPID), 3);
    assert!(third.iter().all(|t| *t == third[0]));
    assert_eq!(sim.calls_to(USER_GET), 12);
    assert!(sim.api_calls().iter().all(|c| c.errcode == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_managers_sharing_an_in_memory_store_fetch_once() {
    let sim = helpers::sim().await;
    let store: Arc<dyn TokenStore> = Arc::new(InMemoryTokenStore::new());
    let managers = (0..4)
        .map(|_| Arc::new(helpers::manager(&sim, Arc::clone(&store))))
        .collect();
    exactly_one_fetch_per_expiry(&sim, managers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_managers_sharing_redis_fetch_once() {
    let sim = helpers::sim().await;
    let prefix = helpers::unique_prefix("four-managers");
    let mut managers = Vec::new();
    for _ in 0..4 {
        // One connection each, as four processes would have.
        let store = RedisTokenStore::connect(&helpers::redis_url(), prefix.clone())
            .await
            .expect("Redis at 127.0.0.1:6379 (or WXPILOT_TEST_REDIS_URL) is reachable");
        managers.push(Arc::new(helpers::manager(&sim, Arc::new(store))));
    }
    exactly_one_fetch_per_expiry(&sim, managers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_compare_and_set_and_lock() {
    let prefix = helpers::unique_prefix("redis-store");
    let store = RedisTokenStore::connect(&helpers::redis_url(), prefix)
        .await
        .expect("Redis reachable");
    let ttl = Duration::from_secs(60);
    let t1 = wxpilot_wechat::StoredToken {
        access_token: "T1".into(),
        expires_at_ms: 1_000,
    };
    let t2 = wxpilot_wechat::StoredToken {
        access_token: "T2".into(),
        expires_at_ms: 2_000,
    };
    assert_eq!(store.load("wx1").await, Ok(None));
    assert_eq!(
        store.compare_and_set("wx1", Some("T0"), &t1, ttl).await,
        Ok(false)
    );
    assert_eq!(store.compare_and_set("wx1", None, &t1, ttl).await, Ok(true));
    assert_eq!(
        store.compare_and_set("wx1", None, &t2, ttl).await,
        Ok(false)
    );
    assert_eq!(store.load("wx1").await, Ok(Some(t1.clone())));
    assert_eq!(
        store.compare_and_set("wx1", Some("T1"), &t2, ttl).await,
        Ok(true)
    );
    assert_eq!(store.load("wx1").await, Ok(Some(t2)));

    let lock = store
        .try_lock("wx1", ttl)
        .await
        .unwrap()
        .expect("free lock");
    assert_eq!(store.try_lock("wx1", ttl).await, Ok(None));
    let other = wxpilot_wechat::token::LockToken::random();
    assert_eq!(store.unlock("wx1", &other).await, Ok(false));
    assert_eq!(store.unlock("wx1", &lock).await, Ok(true));
    // A lock whose TTL ran out can be taken.
    let _short = store
        .try_lock("wx2", Duration::from_millis(30))
        .await
        .unwrap()
        .expect("free lock");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store.try_lock("wx2", ttl).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_token_with_40001_reads_the_store_instead_of_fetching() {
    let sim = helpers::sim().await;
    let store: Arc<dyn TokenStore> = Arc::new(InMemoryTokenStore::new());
    let a = helpers::manager(&sim, Arc::clone(&store));
    let b = helpers::manager(&sim, Arc::clone(&store));

    let t1 = a.access_token().await.unwrap();
    assert_eq!(b.access_token().await.unwrap(), t1);
    assert_eq!(sim.token_requests(APPID), 1);

    // Process B learns T1 is stale and refreshes: the store still holds T1, so it fetches.
    let t2 = b.replace_stale(&t1).await.unwrap();
    assert_ne!(t2, t1);
    assert_eq!(sim.token_requests(APPID), 2);
    // WeChat keeps T1 for 5 minutes; after that it answers 40001.
    sim.advance(Duration::from_secs(301));

    // A still has T1 cached; its call gets 40001, re-reads the store, retries with T2.
    let used = Mutex::new(Vec::new());
    let used_ref = &used;
    let list = a
        .call(|c, t| async move {
            used_ref.lock().unwrap().push(t.clone());
            c.user_list(&t, None).await
        })
        .await
        .unwrap();
    assert_eq!(list.total, 0);
    assert_eq!(used.into_inner().unwrap(), vec![t1.clone(), t2.clone()]);
    assert_eq!(sim.token_requests(APPID), 2, "no new fetch");
    let codes: Vec<i64> = sim
        .api_calls()
        .iter()
        .filter(|c| c.path == USER_GET)
        .map(|c| c.errcode)
        .collect();
    assert_eq!(codes, vec![40001, 0]);

    // replace_stale with the store already newer does not fetch either.
    assert_eq!(a.replace_stale(&t1).await.unwrap(), t2);
    assert_eq!(sim.token_requests(APPID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_40001_stops_after_the_bound() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    m.access_token().await.unwrap();
    assert_eq!(sim.token_requests(APPID), 1);
    sim.inject_errcode(USER_GET, 40001, 100);

    let err = m
        .call(|c, t| async move { c.user_list(&t, None).await })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::TokenInvalid { code: 40001, .. }),
        "{err:?}"
    );
    // The first answer, then one retry after the one refresh allowed.
    assert_eq!(sim.calls_to(USER_GET), 2);
    assert_eq!(sim.token_requests(APPID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_are_retried_with_backoff_within_a_bound() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    let call = || m.call(|c, t| async move { c.user_list(&t, None).await });

    // Busy on the token fetch and then on the call itself: both retried.
    sim.inject_errcode("/cgi-bin/token", -1, 2);
    sim.inject_errcode(USER_GET, -1, 2);
    call().await.expect("third attempt succeeds");
    assert_eq!(sim.calls_to("/cgi-bin/token"), 3);
    assert_eq!(sim.calls_to(USER_GET), 3);

    sim.inject_errcode(USER_GET, -1, 100);
    let err = call().await.unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    // One call plus the three retries of the default policy.
    assert_eq!(sim.calls_to(USER_GET), 3 + 4);
    assert_eq!(sim.token_requests(APPID), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_token_works_for_five_minutes_after_a_new_fetch() {
    let sim = helpers::sim().await;
    let client = ApiClient::new(sim.base_url()).unwrap();
    let t1 = client.fetch_access_token(APPID, SECRET).await.unwrap();
    assert_eq!(t1.expires_in, 7200);
    let t2 = client.fetch_access_token(APPID, SECRET).await.unwrap();
    assert_ne!(t1.access_token, t2.access_token);

    client
        .user_list(&t1.access_token, None)
        .await
        .expect("overlap");
    sim.advance(Duration::from_secs(299));
    client
        .user_list(&t1.access_token, None)
        .await
        .expect("still within 5 min");
    sim.advance(Duration::from_secs(2));
    let err = client.user_list(&t1.access_token, None).await.unwrap_err();
    assert!(
        matches!(err, ApiError::TokenInvalid { code: 40001, .. }),
        "{err:?}"
    );
    client
        .user_list(&t2.access_token, None)
        .await
        .expect("new token fine");

    // The new token expires 7200 s after its fetch: 42001.
    sim.advance(Duration::from_secs(7200 - 301));
    let err = client.user_list(&t2.access_token, None).await.unwrap_err();
    assert!(
        matches!(err, ApiError::TokenInvalid { code: 42001, .. }),
        "{err:?}"
    );

    // Wrong secret, unknown appid.
    let err = client.fetch_access_token(APPID, "wrong").await.unwrap_err();
    assert_eq!(err.errcode(), Some(40125));
    let err = client
        .fetch_access_token("wxnobody", SECRET)
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some(40013));
    assert_eq!(sim.token_requests(APPID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_token_is_shared_and_only_forced_refresh_invalidates() {
    let sim = helpers::sim().await;
    let client = ApiClient::new(sim.base_url()).unwrap();
    let s1 = client
        .fetch_stable_token(APPID, SECRET, false)
        .await
        .unwrap();
    sim.advance(Duration::from_secs(100));
    let s2 = client
        .fetch_stable_token(APPID, SECRET, false)
        .await
        .unwrap();
    assert_eq!(s1.access_token, s2.access_token);
    assert_eq!(s2.expires_in, 7100);
    // An ordinary fetch does not touch the stable token.
    client.fetch_access_token(APPID, SECRET).await.unwrap();
    sim.advance(Duration::from_secs(400));
    client
        .user_list(&s1.access_token, None)
        .await
        .expect("stable token valid");

    // In its last 5 minutes a normal-mode request gets a new one; the old keeps working.
    sim.advance(Duration::from_secs(7200 - 500 - 299));
    let s3 = client
        .fetch_stable_token(APPID, SECRET, false)
        .await
        .unwrap();
    assert_ne!(s3.access_token, s1.access_token);
    assert_eq!(s3.expires_in, 7200);
    client
        .user_list(&s1.access_token, None)
        .await
        .expect("old stable until expiry");

    // Forced refresh invalidates the previous one at once.
    let s4 = client
        .fetch_stable_token(APPID, SECRET, true)
        .await
        .unwrap();
    let err = client.user_list(&s3.access_token, None).await.unwrap_err();
    assert!(err.is_token_invalid(), "{err:?}");
    client.user_list(&s4.access_token, None).await.unwrap();
    assert_eq!(sim.stable_token_requests(APPID), 4);

    // A manager set to stable tokens uses that endpoint only; after a forced refresh
    // elsewhere its 40001 leads to a normal-mode request that returns the new token.
    let m = helpers::manager_for(
        &sim,
        Arc::new(InMemoryTokenStore::new()),
        AccountCredentials::new(APPID, SECRET).with_stable_token(true),
    );
    assert_eq!(m.store_key(), format!("{APPID}:stable"));
    assert_eq!(m.access_token().await.unwrap(), s4.access_token);
    let s5 = client
        .fetch_stable_token(APPID, SECRET, true)
        .await
        .unwrap();
    m.call(|c, t| async move { c.user_list(&t, None).await })
        .await
        .expect("retried with the current stable token");
    assert_eq!(m.access_token().await.unwrap(), s5.access_token);
    assert_eq!(sim.stable_token_requests(APPID), 7);
    assert_eq!(sim.token_requests(APPID), 1);
}
