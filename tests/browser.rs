//! The library in a real browser: Debian's `chromium`, headless, driven
//! through `chromedriver` (see `support/browser.rs`). Every check reads, from
//! inside the page, what the page's own script recorded: the clock page's
//! `window.clock`, or, on the pages these tests serve themselves,
//! `window.sse[name]` for each `EventSource` the page opened (its `onopen`s,
//! errors, each message's `data` and `lastEventId`, each `sse-busy` event).
//!
//! * the clock example opens its stream and its ticks update the page (and
//!   the screenshots `<target>/clock-screenshot.png`, 800×600, and
//!   `<target>/clock-screenshot-phone.png`, 390×844, are saved);
//! * a stream with no events lives through keep-alives;
//! * a cut stream is resumed by the browser, by itself, with
//!   `Last-Event-ID`, and the page misses nothing and sees nothing twice;
//! * (feature `redis`, with a `redis-server`) the server shuts down, ending
//!   the stream, and a new one starts on the same port with the stream in
//!   Redis: the browser comes back by itself and is replayed what was
//!   published while no server ran;
//! * past `max_clients` the browser is told to come back, keeps coming back,
//!   and is served once a slot frees;
//! * a page of another origin reads the stream only where CORS allows it.
//!
//! Without `chromium` and `chromedriver` each test says
//! `skipping: chromium is not installed (apt-get install chromium chromium-driver)`
//! and passes; `.ci/run` installs both. The clock runs in this process: this
//! file includes `examples/clock.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sse_server::tiny_http::{Header, Request, Response};
use sse_server::{ClientId, Cors, Decision, Hub, Server};
use support::browser::{Browser, decode_base64, target_dir};
use support::hubs::client_ids;
use support::init_logging;
use support::relay::Relay;
use support::wait::{ms, wait_until};

/// The longest any one thing may take in the browser, generous for a
/// loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// A test page: one `EventSource` for each query parameter `name=url`, and
/// what each saw on `window.sse[name]`.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>sse-server test page</title></head>
<body>
<script>
  // ?name=url&..: one EventSource each. window.sse[name] is what it saw,
  // window.sources[name] the EventSource itself.
  window.sse = {};
  window.sources = {};
  for (const [name, url] of new URLSearchParams(location.search)) {
    const seen = window.sse[name] =
      { opens: 0, errors: 0, closed: false, data: [], ids: [], busy: [] };
    const source = window.sources[name] = new EventSource(url);
    source.onopen = () => { seen.opens += 1; };
    source.onmessage = (event) => {
      seen.data.push(event.data);
      seen.ids.push(event.lastEventId);
    };
    source.addEventListener("sse-busy", (event) => { seen.busy.push(event.data); });
    source.onerror = () => {
      seen.errors += 1;
      seen.closed = source.readyState === EventSource.CLOSED;
    };
  }
  // Leaving the page ends its streams. Without this, chromium keeps a page
  // it puts in its back/forward cache connected: its streams stay open,
  // and their events are delivered if the user comes back.
  addEventListener("pagehide", () => {
    for (const source of Object.values(window.sources)) source.close();
  });
</script>
</body>
</html>
"#;

/// Serves [`PAGE`] at `/` beside `hub`'s stream at `/events`.
fn page_server(hub: &Hub) -> Server {
    page_server_at(hub, "127.0.0.1:0")
}

/// [`page_server`] on `addr`.
fn page_server_at(hub: &Hub, addr: &str) -> Server {
    Server::builder(hub)
        .fallback(|request: Request| {
            let path = request.url().split('?').next().unwrap_or_default();
            let response = if path == "/" {
                Response::from_string(PAGE).with_header(
                    Header::from_bytes("Content-Type", "text/html; charset=utf-8")
                        .expect("a valid header"),
                )
            } else {
                Response::from_string("not found\n").with_status_code(404)
            };
            let _ = request.respond(response);
        })
        .bind(addr)
        .expect("bind the page server")
}

/// What the page's source `name` saw, read in the page.
fn seen(browser: &Browser, name: &str) -> Value {
    browser.eval(&format!("window.sse[{}]", json!(name)))
}

/// Waits until the hub lists exactly one client, other than `not`; its id.
fn the_one_client(hub: &Hub, not: Option<ClientId>) -> ClientId {
    let mut found = None;
    let listed = wait_until(WAIT, || {
        let ids = client_ids(hub);
        found = ids.first().copied();
        ids.len() == 1 && found != not
    });
    assert!(
        listed,
        "one client other than {not:?}: {:?}",
        client_ids(hub)
    );
    found.expect("a client")
}

/// The clock example's own code (its page, its ticker, its server), run in
/// this process: no binary to build first.
#[path = "../examples/clock.rs"]
#[allow(dead_code)]
mod clock;

/// The clock example, serving on a port it picked; stopped on Drop.
struct ClockExample {
    clock: Option<clock::Clock>,
    /// `http://127.0.0.1:<port>/`.
    url: String,
}

impl ClockExample {
    fn start() -> ClockExample {
        let hub = Hub::new().expect("build the hub");
        let clock = clock::Clock::start("127.0.0.1:0", (hub, false)).expect("start the clock");
        let url = format!("http://{}/", clock.server.local_addr());
        ClockExample {
            clock: Some(clock),
            url,
        }
    }
}

impl Drop for ClockExample {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.take() {
            let _ = clock.stop();
        }
    }
}

/// Width and height of a PNG, from its header.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let png = std::fs::read(path).expect("read the screenshot");
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

#[test]
fn the_clock_page_opens_its_stream_and_ticks_update_it() {
    init_logging();
    let Some(browser) = Browser::start() else {
        return;
    };
    let clock = ClockExample::start();
    browser.open(&clock.url);
    assert!(
        browser.wait_for(
            "window.clock.state === 'open' && window.clock.count >= 1",
            WAIT
        ),
        "the stream opened and a tick came: {}",
        browser.eval("window.clock")
    );
    let first = browser
        .eval("window.clock.count")
        .as_u64()
        .expect("a count");
    // One tick a second.
    assert!(
        browser.wait_for(
            &format!("window.clock.count >= {}", first + 2),
            Duration::from_secs(10)
        ),
        "two more ticks within 10 s: {}",
        browser.eval("window.clock")
    );

    // What the script recorded and what the page shows, read at one
    // instant (no tick can come in the middle of one script).
    let page = browser.eval(
        "({ clock: window.clock,
            time: document.getElementById('time').textContent,
            state: document.getElementById('state').textContent,
            count: document.getElementById('count').textContent,
            lastId: document.getElementById('last-id').textContent,
            opens: document.getElementById('opens').textContent })",
    );
    let clock_state = &page["clock"];
    assert_eq!(clock_state["state"], "open", "{page}");
    assert_eq!(clock_state["opens"], 1, "one connection: {page}");
    let count = clock_state["count"].as_u64().expect("a count");
    let ticks = clock_state["ticks"].as_array().expect("the ticks");
    assert_eq!(ticks.len() as u64, count, "{page}");
    let last_tick = ticks.last().and_then(Value::as_str).expect("a tick");
    let hms = |text: &str| {
        text.len() == 8
            && text.bytes().enumerate().all(|(i, b)| {
                if i % 3 == 2 {
                    b == b':'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    assert!(hms(last_tick), "a tick is HH:MM:SS: {last_tick:?}");
    let last_id = clock_state["lastId"].as_str().expect("an id");
    assert!(
        !last_id.is_empty() && last_id.bytes().all(|b| b.is_ascii_digit()),
        "the ticks' ids are Unix seconds: {last_id:?}"
    );
    // The page shows it.
    assert_eq!(page["time"], last_tick, "{page}");
    assert_eq!(page["state"], "open", "{page}");
    assert_eq!(page["count"], count.to_string(), "{page}");
    assert_eq!(page["lastId"], last_id, "{page}");
    assert_eq!(page["opens"], "1", "{page}");

    // The screenshots: a desktop window, and a phone's width.
    for (name, width, height) in [
        ("clock-screenshot.png", 800, 600),
        ("clock-screenshot-phone.png", 390, 844),
    ] {
        browser.set_viewport_size(width, height);
        assert!(
            browser.wait_for(&format!("window.innerWidth === {width}"), WAIT),
            "the page is {width} px wide: {}",
            browser.eval("[window.innerWidth, window.innerHeight]")
        );
        let path = target_dir().join(name);
        browser.screenshot(&path);
        let (png_width, png_height) = png_size(&path);
        assert!(
            png_width >= width as u32 && png_height >= 400,
            "{png_width}×{png_height}"
        );
        println!("screenshot: {} ({png_width}×{png_height})", path.display());
    }
    assert_eq!(
        browser.eval("window.clock.opens"),
        1,
        "still one connection"
    );
}

#[test]
fn a_stream_without_events_lives_through_three_keep_alives() {
    init_logging();
    let Some(browser) = Browser::start() else {
        return;
    };
    let keep_alive = Duration::from_secs(1);
    let hub = Hub::builder()
        .keep_alive(Some(keep_alive))
        .build()
        .expect("build the hub");
    let server = page_server(&hub);
    browser.open(&format!("http://{}/?main=/events", server.local_addr()));
    assert!(
        browser.wait_for("window.sse.main.opens === 1", WAIT),
        "the stream opened: {}",
        seen(&browser, "main")
    );
    let client = the_one_client(&hub, None);

    // 3.5 keep-alive intervals with no event: the page's EventSource stays
    // open all along, on its first connection.
    let quiet = Instant::now();
    while quiet.elapsed() < keep_alive * 7 / 2 {
        let state = browser.eval(
            "[window.sse.main.opens, window.sse.main.errors, window.sources.main.readyState]",
        );
        assert_eq!(
            state,
            json!([1, 0, 1]),
            "[opens, errors, readyState] after {:?} of quiet: {}",
            quiet.elapsed(),
            seen(&browser, "main")
        );
        // The poll interval of this watch, which the quiet's length bounds.
        std::thread::sleep(ms(100));
    }
    assert_eq!(client_ids(&hub), [client], "the same stream all along");

    hub.notify("after the quiet").expect("notify");
    assert!(
        browser.wait_for("window.sse.main.data.length >= 1", WAIT),
        "the event arrived: {}",
        seen(&browser, "main")
    );
    let main = seen(&browser, "main");
    assert_eq!(main["data"], json!(["after the quiet"]), "{main}");
    assert_eq!((&main["opens"], &main["errors"]), (&json!(1), &json!(0)));
    assert_eq!(client_ids(&hub), [client]);
    drop(browser);
    hub.shutdown().expect("shutdown");
}

/// The `<n>` of an automatic id `<hex>-<n>`.
fn seq(id: &Value) -> u64 {
    id.as_str()
        .and_then(|id| id.rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("id {id} is not <hex>-<n>"))
}

#[test]
fn a_cut_stream_is_resumed_by_the_browser_with_nothing_missed() {
    init_logging();
    let Some(browser) = Browser::start() else {
        return;
    };
    // The Last-Event-ID of each stream request that reached the server.
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook_asked = Arc::clone(&asked);
    let hub = Hub::builder()
        .retry(Some(ms(200)))
        .retry_jitter(ms(200))
        .on_connect(move |request| {
            let last = request.header("Last-Event-ID").unwrap_or_default();
            hook_asked.lock().expect("the list").push(last.to_owned());
            Decision::accept()
        })
        .build()
        .expect("build the hub");
    let server = page_server(&hub);
    // The browser reaches the server through a relay that can cut it off.
    let relay = Relay::start(server.local_addr());
    browser.open(&format!("http://{}/?main=/events", relay.addr()));
    assert!(
        browser.wait_for("window.sse.main.opens === 1", WAIT),
        "the stream opened: {}",
        seen(&browser, "main")
    );
    the_one_client(&hub, None);

    let published = ["one", "two", "three", "four", "five", "six", "seven"];
    for data in &published[..3] {
        hub.notify(*data).expect("notify");
    }
    assert!(
        browser.wait_for("window.sse.main.data.length >= 3", WAIT),
        "three events: {}",
        seen(&browser, "main")
    );

    // The connection is cut, and new ones are refused, while three more
    // events are published.
    relay.down();
    assert!(
        browser.wait_for("window.sse.main.errors >= 1", WAIT),
        "the page saw the stream go: {}",
        seen(&browser, "main")
    );
    for data in &published[3..6] {
        hub.notify(*data).expect("notify");
    }
    relay.up();

    // The browser comes back by itself and is replayed what it missed.
    assert!(
        browser.wait_for(
            "window.sse.main.opens >= 2 && window.sse.main.data.length >= 6",
            WAIT
        ),
        "the browser reconnected and got the missed events: {}",
        seen(&browser, "main")
    );
    the_one_client(&hub, None);
    hub.notify(published[6]).expect("notify");
    assert!(
        browser.wait_for("window.sse.main.data.length >= 7", WAIT),
        "the live event after the replay: {}",
        seen(&browser, "main")
    );

    let main = seen(&browser, "main");
    assert_eq!(main["data"], json!(published), "everything, in order, once");
    assert_eq!(main["closed"], false, "{main}");
    let ids = main["ids"].as_array().expect("the ids");
    let numbers: Vec<u64> = ids.iter().map(seq).collect();
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..first + 7).collect::<Vec<_>>(),
        "consecutive ids: {main}"
    );
    // What reached the server: the first connection without an id, the one
    // after the cut with the id of the last event the page had.
    let asked = asked.lock().expect("the list").clone();
    assert_eq!(
        asked,
        ["", ids[2].as_str().expect("an id")],
        "the Last-Event-ID of each stream request that reached the server"
    );
    drop(browser);
    hub.shutdown().expect("shutdown");
}

#[test]
fn past_max_clients_the_browser_is_told_to_come_back_and_is_served_once_a_slot_frees() {
    init_logging();
    let Some(browser) = Browser::start() else {
        return;
    };
    let hub = Hub::builder()
        .max_clients(1)
        .busy_retry(ms(200))
        .build()
        .expect("build the hub");
    let server = page_server(&hub);
    let url = format!("http://{}/?main=/events", server.local_addr());

    // The first window holds the only slot.
    let first = browser.window();
    browser.open(&url);
    assert!(
        browser.wait_for("window.sse.main.opens === 1", WAIT),
        "the first stream opened: {}",
        seen(&browser, "main")
    );
    let first_client = the_one_client(&hub, None);

    // The second is told to come back, and comes back, again and again.
    let second = browser.new_window();
    browser.switch_to(&second);
    browser.open(&url);
    assert!(
        browser.wait_for("window.sse.main.busy.length >= 3", WAIT),
        "told to come back three times: {}",
        seen(&browser, "main")
    );
    let waiting = seen(&browser, "main");
    let busy = waiting["busy"].as_array().expect("the busy events");
    assert!(
        busy.iter().all(|why| why == "too-many-clients"),
        "{waiting}"
    );
    assert_eq!(waiting["closed"], false, "it keeps trying: {waiting}");
    assert!(hub.stats().rejected >= 3, "{:?}", hub.stats());

    // Meanwhile an event reaches the first window only.
    hub.notify("while full").expect("notify");
    browser.switch_to(&first);
    assert!(
        browser.wait_for("window.sse.main.data.length >= 1", WAIT),
        "the first window got the event: {}",
        seen(&browser, "main")
    );
    assert_eq!(seen(&browser, "main")["data"], json!(["while full"]));
    browser.switch_to(&second);
    assert_eq!(
        seen(&browser, "main")["data"],
        json!([]),
        "the second window is not served"
    );

    // The first window navigates away (its page closes its stream when
    // hidden); the second is served at its next try.
    browser.switch_to(&first);
    browser.open("about:blank");
    let second_client = the_one_client(&hub, Some(first_client));
    hub.notify("your turn").expect("notify");
    browser.switch_to(&second);
    assert!(
        browser.wait_for("window.sse.main.data.length >= 1", WAIT),
        "the second window got the event once served: {}",
        seen(&browser, "main")
    );
    let served = seen(&browser, "main");
    assert_eq!(
        served["data"],
        json!(["your turn"]),
        "only the live event: no id came with the busy answers, so nothing is replayed"
    );
    assert_eq!(client_ids(&hub), [second_client]);
    drop(browser);
    hub.shutdown().expect("shutdown");
}

/// A hub with `cors`, recording the `Origin` of each stream request that
/// reaches its `on_connect`.
fn cors_hub(cors: Option<Cors>) -> (Hub, Arc<Mutex<Vec<String>>>) {
    let origins: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook_origins = Arc::clone(&origins);
    let mut builder = Hub::builder().on_connect(move |request| {
        let origin = request.header("Origin").unwrap_or_default();
        hook_origins
            .lock()
            .expect("the list")
            .push(origin.to_owned());
        Decision::accept()
    });
    if let Some(cors) = cors {
        builder = builder.cors(cors);
    }
    (builder.build().expect("build the hub"), origins)
}

#[test]
fn a_page_of_another_origin_reads_the_stream_only_where_cors_allows_it() {
    init_logging();
    let Some(browser) = Browser::start() else {
        return;
    };
    // The page's own server, whose stream (same origin) is the control.
    let (home_hub, _) = cors_hub(None);
    let home = page_server(&home_hub);
    let origin = format!("http://{}", home.local_addr());
    // Other origins: one that lists the page's, one that allows any, one
    // with no CORS (no headers), one that lists another origin only (403).
    let servers = [
        ("listed", Some(Cors::origins([origin.clone()]))),
        ("any", Some(Cors::any())),
        ("plain", None),
        ("elsewhere", Some(Cors::origins(["http://127.0.0.1:1"]))),
    ]
    .map(|(name, cors)| {
        let (hub, origins) = cors_hub(cors);
        let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
        (name, hub, origins, server)
    });
    let mut url = format!("{origin}/?home=/events");
    for (name, _, _, server) in &servers {
        url.push_str(&format!("&{name}=http://{}/events", server.local_addr()));
    }
    browser.open(&url);
    let [listed, any, plain, elsewhere] = &servers;

    // The allowed streams open, the others fail.
    assert!(
        browser.wait_for(
            "sse.home.opens >= 1 && sse.listed.opens >= 1 && sse.any.opens >= 1
             && sse.plain.errors >= 1 && sse.elsewhere.errors >= 1",
            WAIT
        ),
        "{}",
        browser.eval("window.sse")
    );
    for (name, hub, origins, _) in [listed, any] {
        the_one_client(hub, None);
        assert_eq!(
            *origins.lock().expect("the list"),
            [origin.as_str()],
            "{name}: the browser sent its page's Origin"
        );
        hub.notify(format!("for {name}")).expect("notify");
    }
    assert!(
        browser.wait_for(
            "sse.listed.data.length >= 1 && sse.any.data.length >= 1",
            WAIT
        ),
        "the allowed streams' events arrived: {}",
        browser.eval("window.sse")
    );
    assert_eq!(seen(&browser, "listed")["data"], json!(["for listed"]));
    assert_eq!(seen(&browser, "any")["data"], json!(["for any"]));

    // The server without CORS served the request (the browser asked)...
    let (_, plain_hub, plain_origins, _) = plain;
    assert!(
        wait_until(WAIT, || !plain_origins.lock().expect("the list").is_empty()),
        "the request without CORS reached its server"
    );
    assert_eq!(plain_origins.lock().expect("the list")[0], origin);
    // ...and the one that lists another origin refused it before its hook.
    let (_, elsewhere_hub, elsewhere_origins, _) = elsewhere;
    assert!(elsewhere_origins.lock().expect("the list").is_empty());

    // Events published on both, then one on the page's own stream: once
    // that one is in, the refused streams' would have been too.
    plain_hub.notify("not for this page").expect("notify");
    elsewhere_hub.notify("not for this page").expect("notify");
    the_one_client(&home_hub, None);
    home_hub.notify("control").expect("notify");
    assert!(
        browser.wait_for("sse.home.data.length >= 1", WAIT),
        "the control event arrived: {}",
        browser.eval("window.sse")
    );
    let all = browser.eval("window.sse");
    assert_eq!(all["home"]["data"], json!(["control"]), "{all}");
    for name in ["plain", "elsewhere"] {
        let refused = &all[name];
        assert_eq!(refused["data"], json!([]), "{name}: no message: {all}");
        assert_eq!(refused["opens"], 0, "{name}: never open: {all}");
        assert!(refused["errors"].as_u64() >= Some(1), "{name}: {all}");
    }
    println!(
        "refused streams, as the page saw them: plain {}, elsewhere {}",
        all["plain"], all["elsewhere"]
    );
    drop(browser);
    for (_, hub, _, _) in &servers {
        hub.shutdown().expect("shutdown");
    }
    home_hub.shutdown().expect("shutdown");
}

#[test]
fn the_drivers_base64_decoder_decodes() {
    assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
    assert_eq!(decode_base64("Zg==").as_deref(), Some(&b"f"[..]));
    assert_eq!(decode_base64("Zm8=").as_deref(), Some(&b"fo"[..]));
    assert_eq!(decode_base64("Zm9v").as_deref(), Some(&b"foo"[..]));
    assert_eq!(decode_base64("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
    assert_eq!(
        decode_base64("+/+/").as_deref(),
        Some(&[0xfb, 0xff, 0xbf][..])
    );
    assert_eq!(decode_base64("Zg="), None);
    assert_eq!(decode_base64("Zg==Zm9v"), None);
    assert_eq!(decode_base64("Z!=="), None);
}

/// A server on a shared Redis Stream shuts down (which ends the browser's
/// stream), three events are published while no server runs, and a new
/// server with a new hub starts on the same port: the browser reconnects by
/// itself with `Last-Event-ID` and is replayed from Redis what it missed,
/// then gets live events, each once, in order.
#[cfg(feature = "redis")]
#[test]
fn a_restarted_server_on_redis_replays_what_the_browser_missed() {
    init_logging();
    let Some(redis) = support::redis::RedisServer::start() else {
        return;
    };
    let Some(browser) = Browser::start() else {
        return;
    };
    let key = "browser-restart";
    let hub_on_redis = || {
        Hub::builder()
            .redis(&redis.url(), key)
            .redis_timeout(Duration::from_secs(5))
            .retry(Some(ms(200)))
            .retry_jitter(ms(200))
            .build()
            .expect("build a hub on Redis")
    };
    let first = hub_on_redis();
    let server = page_server(&first);
    let addr = server.local_addr().to_string();
    browser.open(&format!("http://{addr}/?main=/events"));
    assert!(
        browser.wait_for("window.sse.main.opens === 1", WAIT),
        "the stream opened: {}",
        seen(&browser, "main")
    );
    the_one_client(&first, None);
    let published = ["one", "two", "three", "four", "five", "six", "seven"];
    for data in &published[..3] {
        first.notify(*data).expect("notify");
    }
    assert!(
        browser.wait_for("window.sse.main.data.length >= 3", WAIT),
        "three events: {}",
        seen(&browser, "main")
    );

    // The server shuts down: the stream ends, and reconnecting fails while
    // another process publishes.
    server.shutdown().expect("shutdown");
    assert!(
        browser.wait_for("window.sse.main.errors >= 1", WAIT),
        "the page saw the stream end: {}",
        seen(&browser, "main")
    );
    let elsewhere = hub_on_redis();
    for data in &published[3..6] {
        elsewhere.notify(*data).expect("notify");
    }

    // A new server on the same port, with a hub that never saw the events.
    let second = hub_on_redis();
    let _restarted = page_server_at(&second, &addr);
    assert!(
        browser.wait_for(
            "window.sse.main.opens >= 2 && window.sse.main.data.length >= 6",
            WAIT
        ),
        "the browser came back and was replayed what it missed: {}",
        seen(&browser, "main")
    );
    the_one_client(&second, None);
    elsewhere.notify(published[6]).expect("notify");
    assert!(
        browser.wait_for("window.sse.main.data.length >= 7", WAIT),
        "the live event after the replay: {}",
        seen(&browser, "main")
    );
    let main = seen(&browser, "main");
    assert_eq!(main["data"], json!(published), "everything, in order, once");
    assert_eq!(main["closed"], false, "{main}");
    let ids: Vec<&str> = main["ids"]
        .as_array()
        .expect("the ids")
        .iter()
        .map(|id| id.as_str().expect("an id"))
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 7, "an id each, the stream's: {ids:?}");
}
