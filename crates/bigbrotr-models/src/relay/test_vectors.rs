//! Test vectors generated with CPython 3.11 from BigBrotr 6.6.9's relay URL code.

use super::NetworkType;

/// `sanitize_relay_url` vectors produced by BigBrotr 6.6.9's `sanitize_relay_url`, run under
/// CPython 3.11 with `rfc3986` 2.0.0. For `Invalid URL` errors the original appends the rfc3986
/// exception tuple; the table keeps the full Python message and the test compares the prefix
/// up to the first `',` (our message is the tuple's first element).
pub(super) const SANITIZE_VECTORS: &[(&str, Result<&str, &str>)] = &[
    ("wss://relay.damus.io", Ok("wss://relay.damus.io")),
    ("  wss://relay.damus.io  ", Ok("wss://relay.damus.io")),
    ("\u{9}wss://relay.damus.io\u{a}", Ok("wss://relay.damus.io")),
    (
        "\u{1c}wss://relay.damus.io\u{3000}",
        Ok("wss://relay.damus.io"),
    ),
    ("WSS://Relay.Damus.IO", Ok("wss://relay.damus.io")),
    ("ws://relay.damus.io", Ok("wss://relay.damus.io")),
    ("wss://relay.damus.io/", Ok("wss://relay.damus.io")),
    ("wss://relay.damus.io:443", Ok("wss://relay.damus.io")),
    ("ws://relay.damus.io:443", Ok("wss://relay.damus.io")),
    ("wss://relay.damus.io:80", Ok("wss://relay.damus.io:80")),
    ("wss://relay.damus.io:8080", Ok("wss://relay.damus.io:8080")),
    ("wss://relay.damus.io:0", Err("Port out of range: 0")),
    ("wss://relay.damus.io:00000", Err("Port out of range: 0")),
    ("wss://relay.damus.io:1", Ok("wss://relay.damus.io:1")),
    (
        "wss://relay.damus.io:65535",
        Ok("wss://relay.damus.io:65535"),
    ),
    (
        "wss://relay.damus.io:65536",
        Err(
            "Invalid URL: ('port was found to be invalid', URIReference(scheme='wss', authority='relay.damus.io:65536', path=None, query=None, fragment=None), ['port'])",
        ),
    ),
    (
        "wss://relay.damus.io:99999",
        Err(
            "Invalid URL: ('port was found to be invalid', URIReference(scheme='wss', authority='relay.damus.io:99999', path=None, query=None, fragment=None), ['port'])",
        ),
    ),
    (
        "wss://relay.damus.io:123456",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://relay.damus.io:", Ok("wss://relay.damus.io")),
    ("wss://relay.damus.io:0443", Ok("wss://relay.damus.io")),
    (
        "wss://relay.damus.io:abc",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://relay.damus.io?x=1", Ok("wss://relay.damus.io")),
    ("wss://relay.damus.io#frag", Ok("wss://relay.damus.io")),
    (
        "wss://relay.damus.io/path?x=1#f",
        Ok("wss://relay.damus.io/path"),
    ),
    (
        "ws://Relay.Example.Com:443/path?key=val#frag",
        Ok("wss://relay.example.com/path"),
    ),
    (
        "https://relay.damus.io",
        Err("Invalid scheme: must be ws or wss"),
    ),
    (
        "http://relay.damus.io",
        Err("Invalid scheme: must be ws or wss"),
    ),
    (
        "ftp://relay.damus.io",
        Err("Invalid scheme: must be ws or wss"),
    ),
    (
        "relay.damus.io",
        Err(
            "Invalid URL: ('host, scheme were required but missing', URIReference(scheme=None, authority=None, path='relay.damus.io', query=None, fragment=None), ['host', 'scheme'])",
        ),
    ),
    (
        "wss:relay.damus.io",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path='relay.damus.io', query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss:///path",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path='/path', query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "",
        Err(
            "Invalid URL: ('host, scheme were required but missing', URIReference(scheme=None, authority=None, path=None, query=None, fragment=None), ['host', 'scheme'])",
        ),
    ),
    (
        "   ",
        Err(
            "Invalid URL: ('host, scheme were required but missing', URIReference(scheme=None, authority=None, path=None, query=None, fragment=None), ['host', 'scheme'])",
        ),
    ),
    (
        "//relay.damus.io",
        Err(
            "Invalid URL: ('scheme was required but missing', URIReference(scheme=None, authority='relay.damus.io', path=None, query=None, fragment=None), ['scheme'])",
        ),
    ),
    (
        "1wss://relay.damus.io",
        Err(
            "Invalid URL: ('host, scheme were required but missing', URIReference(scheme=None, authority=None, path='1wss://relay.damus.io', query=None, fragment=None), ['host', 'scheme'])",
        ),
    ),
    ("wss://user:pass@relay.damus.io", Ok("wss://relay.damus.io")),
    (
        "wss://@relay.damus.io",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://a@b@relay.com",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://us%65r@relay.com", Ok("wss://relay.com")),
    (
        "wss://atlas.nostr.land/wss://relay.damus.io",
        Ok("wss://atlas.nostr.land"),
    ),
    ("wss://relay.com//a//b//", Ok("wss://relay.com/a/b")),
    ("wss://relay.com/a/./b/../c", Ok("wss://relay.com/a/c")),
    ("wss://relay.com/../a", Ok("wss://relay.com/a")),
    ("wss://relay.com/%41bc", Ok("wss://relay.com/%41bc")),
    ("wss://relay.com/%41%62", Ok("wss://relay.com/%41%62")),
    ("wss://relay.com/%2e%2e", Ok("wss://relay.com")),
    ("wss://relay.com/a%2Fb", Ok("wss://relay.com/a%2Fb")),
    ("wss://relay.com/a%2fb", Ok("wss://relay.com/a%2Fb")),
    ("wss://relay.com/a b", Ok("wss://relay.com")),
    ("wss://relay.com/\u{e4}", Ok("wss://relay.com")),
    (
        "wss://relay.com/a_b~c.d-e:f",
        Ok("wss://relay.com/a_b~c.d-e:f"),
    ),
    ("wss://relay.com/-a", Ok("wss://relay.com")),
    ("wss://relay.com/a-", Ok("wss://relay.com")),
    (
        "wss://relay.com/a[b]",
        Err(
            "Invalid URL: ('path was found to be invalid', URIReference(scheme='wss', authority='relay.com', path='/a[b]', query=None, fragment=None), ['path'])",
        ),
    ),
    ("wss://relay.com/a%zz", Ok("wss://relay.com")),
    ("wss://relay.com\\path", Ok("wss://relay.com")),
    ("wss://relay.com/nostr", Ok("wss://relay.com/nostr")),
    ("wss://relay.com/v1/ws", Ok("wss://relay.com/v1/ws")),
    ("wss://relay.com/a@b", Ok("wss://relay.com")),
    ("wss://relay.com/a;b", Ok("wss://relay.com")),
    ("wss://relay.com/.", Ok("wss://relay.com")),
    ("wss://relay.com/..", Ok("wss://relay.com")),
    ("wss://relay.com/a/%", Ok("wss://relay.com")),
    ("wss://relay.com/~a", Ok("wss://relay.com")),
    ("wss://relay.com/a~", Ok("wss://relay.com")),
    ("wss://relay.com/A/B", Ok("wss://relay.com/A/B")),
    ("wss://relay.com/a.b", Ok("wss://relay.com/a.b")),
    ("wss://relay.com/a:b", Ok("wss://relay.com/a:b")),
    ("wss://relay.com/:a", Ok("wss://relay.com")),
    ("wss://relay.com/1", Ok("wss://relay.com/1")),
    ("wss://relay.com/a/b/", Ok("wss://relay.com/a/b")),
    ("wss://relay.com.", Ok("wss://relay.com")),
    ("wss://relay.com..", Ok("wss://relay.com")),
    ("wss://rel%61y.com", Ok("wss://relay.com")),
    ("wss://rel%20ay.com", Err("Invalid host: 'rel ay.com'")),
    ("wss://relay%00.com", Err("Invalid host: 'relay\u{0}.com'")),
    ("wss://relay%5C.com", Err("Invalid host: 'relay\\.com'")),
    ("wss://relay%09.com", Err("Invalid host: 'relay\u{9}.com'")),
    ("wss://rel%C3%A9.com", Err("Invalid host: 'rel\u{e9}.com'")),
    ("wss://rel%FF.com", Err("Invalid host: 'rel\u{fffd}.com'")),
    ("wss://RELAY.com", Ok("wss://relay.com")),
    ("wss://relay_1.example.com", Ok("wss://relay_1.example.com")),
    ("wss://_relay.example.com", Ok("wss://_relay.example.com")),
    ("wss://-relay.com", Err("Invalid host: '-relay.com'")),
    ("wss://relay-.com", Err("Invalid host: 'relay-.com'")),
    ("wss://re-lay.com", Ok("wss://re-lay.com")),
    ("wss://relay", Err("Invalid host: 'relay'")),
    ("wss://relay.123", Err("Invalid host: 'relay.123'")),
    ("wss://123.com", Ok("wss://123.com")),
    ("wss://a..com", Err("Invalid host: 'a..com'")),
    ("wss://.relay.com", Err("Invalid host: '.relay.com'")),
    ("wss://relay.c_m", Ok("wss://relay.c_m")),
    ("wss://relay.c-m", Ok("wss://relay.c-m")),
    ("wss://relay.com1", Ok("wss://relay.com1")),
    ("wss://relay.1com", Ok("wss://relay.1com")),
    ("wss://re!ay.com", Err("Invalid host: 're!ay.com'")),
    ("wss://re$lay.com", Err("Invalid host: 're$lay.com'")),
    ("wss://relay.com%2E", Ok("wss://relay.com")),
    ("wss://localhost", Err("Local addresses not allowed")),
    (
        "wss://localhost.localdomain",
        Err("Local addresses not allowed"),
    ),
    ("wss://LOCALHOST", Err("Local addresses not allowed")),
    ("wss://localhost:8080", Err("Local addresses not allowed")),
    ("wss://localhost.", Err("Local addresses not allowed")),
    ("wss://127.0.0.1", Err("Local addresses not allowed")),
    ("wss://[::1]", Err("Local addresses not allowed")),
    ("wss://10.1.2.3", Err("Local addresses not allowed")),
    ("wss://0.0.0.0", Err("Local addresses not allowed")),
    ("wss://8.8.8.8", Ok("wss://8.8.8.8")),
    ("wss://8.8.8.8:443", Ok("wss://8.8.8.8")),
    ("ws://1.1.1.1", Ok("wss://1.1.1.1")),
    ("wss://1.1.1.1:80", Ok("wss://1.1.1.1:80")),
    (
        "wss://[2606:4700:4700::1111]",
        Ok("wss://[2606:4700:4700::1111]"),
    ),
    (
        "wss://[2606:4700:4700:0:0:0:0:1111]",
        Ok("wss://[2606:4700:4700::1111]"),
    ),
    (
        "wss://[2606:4700:4700::1111]:8443",
        Ok("wss://[2606:4700:4700::1111]:8443"),
    ),
    (
        "wss://[2606:4700:4700::1111]:443",
        Ok("wss://[2606:4700:4700::1111]"),
    ),
    ("wss://[2606:4700::]", Ok("wss://[2606:4700::]")),
    ("wss://[2606:0:0:1:0:0:0:1]", Ok("wss://[2606:0:0:1::1]")),
    ("wss://[2606:0:0:1:0:0:1:1]", Ok("wss://[2606::1:0:0:1:1]")),
    (
        "wss://[2606:4700:0:1:2:3:4:5]",
        Ok("wss://[2606:4700:0:1:2:3:4:5]"),
    ),
    (
        "wss://[2606:4700:00a0:0001::0001]",
        Ok("wss://[2606:4700:a0:1::1]"),
    ),
    ("wss://[2606:4700::1]8443", Ok("wss://[2606:4700::1]:8443")),
    (
        "wss://[2606:4700:4700::1111].",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[2606:4700:4700::1111]x",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://[::ffff:8.8.8.8]", Err("Local addresses not allowed")),
    ("wss://[::8.8.8.8]", Ok("wss://[::808:808]")),
    (
        "wss://[2606:4700::1%25eth0]",
        Ok("wss://[2606:4700::1%eth0]"),
    ),
    ("wss://[2606:4700::1%eth0]", Ok("wss://[2606:4700::1%eth0]")),
    ("wss://[2606:4700::1%25]", Ok("wss://[2606:4700::1%25]")),
    ("wss://[fe80::1%25eth0]", Err("Local addresses not allowed")),
    ("wss://01.02.03.04", Err("Invalid host: '01.02.03.04'")),
    (
        "wss://256.1.1.1",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://1.2.3", Err("Invalid host: '1.2.3'")),
    ("wss://1.2.3.4.5", Err("Invalid host: '1.2.3.4.5'")),
    ("wss://[v1.abc]", Ok("wss://v1.abc")),
    ("wss://[v1.abc.com]", Ok("wss://v1.abc.com")),
    (
        "wss://[::1",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[gg::1]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[1:2:3:4:5:6:7:8:9]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[1::2::3]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[2606:4700::8.8.8.256]",
        Err("Invalid host: '2606:4700::8.8.8.256'"),
    ),
    (
        "wss://[2606:4700::08.8.8.8]",
        Err("Invalid host: '2606:4700::08.8.8.8'"),
    ),
    (
        "wss://[2606:4700:4700:4700:4700:4700:4700:4700]",
        Ok("wss://[2606:4700:4700:4700:4700:4700:4700:4700]"),
    ),
    (
        "wss://[2606:4700:4700:4700:4700:4700:4700::]",
        Ok("wss://[2606:4700:4700:4700:4700:4700:4700:0]"),
    ),
    (
        "wss://[::2606:4700:4700:4700:4700:4700:4700]",
        Ok("wss://[0:2606:4700:4700:4700:4700:4700:4700]"),
    ),
    (
        "wss://[2606:4700:4700:4700:4700:4700:8.8.8.8]",
        Ok("wss://[2606:4700:4700:4700:4700:4700:808:808]"),
    ),
    (
        "wss://[2606:4700:4700:4700:4700::8.8.8.8]",
        Ok("wss://[2606:4700:4700:4700:4700:0:808:808]"),
    ),
    (
        "wss://[2606:4700:4700:4700:4700:4700::8.8.8.8]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[2606:4700:4700:4700:4700:4700:4700::1]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "wss://[12345::1]",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://[2606:4700::1]:0", Err("Port out of range: 0")),
    ("wss://[2606:4700::1]:", Ok("wss://[2606:4700::1]")),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "wss://2GZYXA5IHM7NSGGFXNU52RCK2VV4RVMDLKIU3ZZUI5DU4XYCLEN53WID.ONION",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "wss://expyuzz4wqqyqhjn.onion",
        Ok("ws://expyuzz4wqqyqhjn.onion"),
    ),
    (
        "wss://www.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        Ok("ws://www.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "wss://a.b.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        Ok("ws://a.b.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "wss://-a.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        Err("Invalid host: '-a.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion'"),
    ),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:80",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:443",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:443"),
    ),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9000/nostr",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9000/nostr"),
    ),
    ("wss://abc.onion", Err("Invalid host: 'abc.onion'")),
    ("wss://.onion", Err("Invalid host: '.onion'")),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wi1.onion",
        Err("Invalid host: '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wi1.onion'"),
    ),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53widx.onion",
        Err("Invalid host: '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53widx.onion'"),
    ),
    (
        "wss://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion.",
        Ok("ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"),
    ),
    ("wss://x.i2p", Ok("ws://x.i2p")),
    ("wss://x.i2p:80", Ok("ws://x.i2p")),
    ("wss://relay.x.i2p", Ok("ws://relay.x.i2p")),
    (
        "wss://ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p",
        Ok("ws://ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p"),
    ),
    ("wss://abc.b32.i2p", Err("Invalid host: 'abc.b32.i2p'")),
    ("wss://-x.i2p", Err("Invalid host: '-x.i2p'")),
    ("wss://x_y.i2p", Ok("ws://x_y.i2p")),
    ("wss://.i2p", Err("Invalid host: '.i2p'")),
    ("wss://i2p", Err("Invalid host: 'i2p'")),
    (
        "wss://kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki",
        Ok("ws://kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki"),
    ),
    (
        "wss://a.kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki",
        Err("Invalid host: 'a.kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki'"),
    ),
    ("wss://x.loki", Err("Invalid host: 'x.loki'")),
    (
        "wss://KCPYAWMZSE7TRDBZNCIMDI5T7TDIKKMM6PU7MKCUFGPO3IRO4EMY.loki:8080",
        Ok("ws://kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki:8080"),
    ),
    ("wss://m\u{fc}nchen.de", Ok("wss://xn--mnchen-3ya.de")),
    ("wss://M\u{dc}NCHEN.de", Ok("wss://xn--mnchen-3ya.de")),
    ("wss://stra\u{df}e.de", Ok("wss://strasse.de")),
    ("wss://\u{c4}\u{d6}\u{dc}.com", Ok("wss://xn--4ca0bs.com")),
    ("wss://\u{65e5}\u{672c}.jp", Ok("wss://xn--wgv71a.jp")),
    ("wss://\u{1f4a9}.la", Ok("wss://xn--ls8h.la")),
    (
        "wss://\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
        Ok("wss://example.com"),
    ),
    (
        "wss://\u{65e5}\u{672c}\u{3002}jp",
        Ok("wss://xn--wgv71a.jp"),
    ),
    (
        "wss://\u{65e5}\u{672c}\u{3002}jp/path",
        Ok("wss://xn--wgv71a.jp/path"),
    ),
    (
        "wss://\u{3c2}\u{3bf}\u{3c6}\u{3af}\u{3b1}.gr",
        Ok("wss://xn--kxae4bpq.gr"),
    ),
    (
        "wss://\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}",
        Ok("wss://xn--e1afmkfd.xn--p1ai"),
    ),
    (
        "wss://xn--\u{fc}.com",
        Err("Invalid internationalized hostname: 'xn--\u{fc}.com'"),
    ),
    (
        "wss://\u{fc}\u{3002}\u{3002}x.com",
        Err("Invalid internationalized hostname: '\u{fc}\u{3002}\u{3002}x.com'"),
    ),
    (
        "wss://relay.\u{65e5}\u{672c}.jp:8080/path",
        Ok("wss://relay.xn--wgv71a.jp:8080/path"),
    ),
    ("wss://\u{fc}@relay.com", Ok("wss://relay-2ya.com")),
    ("wss://relay.com/\u{fc}", Ok("wss://relay.com")),
    (
        "wss://re lay.com",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://a\u{200d}b.com", Ok("wss://ab.com")),
    (
        "wss://relay.com:\u{e9}",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    (
        "m\u{fc}nchen.de",
        Err(
            "Invalid URL: ('host, scheme were required but missing', URIReference(scheme=None, authority=None, path='m%C3%BCnchen.de', query=None, fragment=None), ['host', 'scheme'])",
        ),
    ),
    ("wss://xn--mnchen-3ya.de", Ok("wss://xn--mnchen-3ya.de")),
    (
        "wss://relay.com\u{0}",
        Err(
            "Invalid URL: ('host was required but missing', URIReference(scheme='wss', authority=None, path=None, query=None, fragment=None), ['host'])",
        ),
    ),
    ("wss://relay.com/\u{0}", Ok("wss://relay.com")),
];

/// Addresses at the edges of every local block, classified by CPython's `ipaddress` with the
/// 6.6.9 block list: first and last address inside, and the neighbours just outside.
pub(super) const LOCAL_RANGE_VECTORS: &[(&str, NetworkType)] = &[
    ("0.0.0.0", NetworkType::Local),             // 0.0.0.0/8
    ("0.255.255.255", NetworkType::Local),       // 0.0.0.0/8
    ("1.0.0.0", NetworkType::Clearnet),          // 0.0.0.0/8
    ("10.0.0.0", NetworkType::Local),            // 10.0.0.0/8
    ("10.255.255.255", NetworkType::Local),      // 10.0.0.0/8
    ("9.255.255.255", NetworkType::Clearnet),    // 10.0.0.0/8
    ("11.0.0.0", NetworkType::Clearnet),         // 10.0.0.0/8
    ("100.64.0.0", NetworkType::Local),          // 100.64.0.0/10
    ("100.127.255.255", NetworkType::Local),     // 100.64.0.0/10
    ("100.63.255.255", NetworkType::Clearnet),   // 100.64.0.0/10
    ("100.128.0.0", NetworkType::Clearnet),      // 100.64.0.0/10
    ("127.0.0.0", NetworkType::Local),           // 127.0.0.0/8
    ("127.255.255.255", NetworkType::Local),     // 127.0.0.0/8
    ("126.255.255.255", NetworkType::Clearnet),  // 127.0.0.0/8
    ("128.0.0.0", NetworkType::Clearnet),        // 127.0.0.0/8
    ("169.254.0.0", NetworkType::Local),         // 169.254.0.0/16
    ("169.254.255.255", NetworkType::Local),     // 169.254.0.0/16
    ("169.253.255.255", NetworkType::Clearnet),  // 169.254.0.0/16
    ("169.255.0.0", NetworkType::Clearnet),      // 169.254.0.0/16
    ("172.16.0.0", NetworkType::Local),          // 172.16.0.0/12
    ("172.31.255.255", NetworkType::Local),      // 172.16.0.0/12
    ("172.15.255.255", NetworkType::Clearnet),   // 172.16.0.0/12
    ("172.32.0.0", NetworkType::Clearnet),       // 172.16.0.0/12
    ("192.0.0.0", NetworkType::Local),           // 192.0.0.0/24
    ("192.0.0.255", NetworkType::Local),         // 192.0.0.0/24
    ("191.255.255.255", NetworkType::Clearnet),  // 192.0.0.0/24
    ("192.0.1.0", NetworkType::Clearnet),        // 192.0.0.0/24
    ("192.0.2.0", NetworkType::Local),           // 192.0.2.0/24
    ("192.0.2.255", NetworkType::Local),         // 192.0.2.0/24
    ("192.0.1.255", NetworkType::Clearnet),      // 192.0.2.0/24
    ("192.0.3.0", NetworkType::Clearnet),        // 192.0.2.0/24
    ("192.88.99.0", NetworkType::Local),         // 192.88.99.0/24
    ("192.88.99.255", NetworkType::Local),       // 192.88.99.0/24
    ("192.88.98.255", NetworkType::Clearnet),    // 192.88.99.0/24
    ("192.88.100.0", NetworkType::Clearnet),     // 192.88.99.0/24
    ("192.168.0.0", NetworkType::Local),         // 192.168.0.0/16
    ("192.168.255.255", NetworkType::Local),     // 192.168.0.0/16
    ("192.167.255.255", NetworkType::Clearnet),  // 192.168.0.0/16
    ("192.169.0.0", NetworkType::Clearnet),      // 192.168.0.0/16
    ("198.18.0.0", NetworkType::Local),          // 198.18.0.0/15
    ("198.19.255.255", NetworkType::Local),      // 198.18.0.0/15
    ("198.17.255.255", NetworkType::Clearnet),   // 198.18.0.0/15
    ("198.20.0.0", NetworkType::Clearnet),       // 198.18.0.0/15
    ("198.51.100.0", NetworkType::Local),        // 198.51.100.0/24
    ("198.51.100.255", NetworkType::Local),      // 198.51.100.0/24
    ("198.51.99.255", NetworkType::Clearnet),    // 198.51.100.0/24
    ("198.51.101.0", NetworkType::Clearnet),     // 198.51.100.0/24
    ("203.0.113.0", NetworkType::Local),         // 203.0.113.0/24
    ("203.0.113.255", NetworkType::Local),       // 203.0.113.0/24
    ("203.0.112.255", NetworkType::Clearnet),    // 203.0.113.0/24
    ("203.0.114.0", NetworkType::Clearnet),      // 203.0.113.0/24
    ("224.0.0.0", NetworkType::Local),           // 224.0.0.0/4
    ("239.255.255.255", NetworkType::Local),     // 224.0.0.0/4
    ("223.255.255.255", NetworkType::Clearnet),  // 224.0.0.0/4
    ("240.0.0.0", NetworkType::Local),           // 224.0.0.0/4
    ("240.0.0.0", NetworkType::Local),           // 240.0.0.0/4
    ("255.255.255.255", NetworkType::Local),     // 240.0.0.0/4
    ("239.255.255.255", NetworkType::Local),     // 240.0.0.0/4
    ("255.255.255.255", NetworkType::Local),     // 255.255.255.255/32
    ("255.255.255.255", NetworkType::Local),     // 255.255.255.255/32
    ("255.255.255.254", NetworkType::Local),     // 255.255.255.255/32
    ("::1", NetworkType::Local),                 // ::1/128
    ("::1", NetworkType::Local),                 // ::1/128
    ("::", NetworkType::Local),                  // ::1/128
    ("::2", NetworkType::Clearnet),              // ::1/128
    ("::", NetworkType::Local),                  // ::/128
    ("::", NetworkType::Local),                  // ::/128
    ("::1", NetworkType::Local),                 // ::/128
    ("::ffff:0:0", NetworkType::Local),          // ::ffff:0:0/96
    ("::ffff:ffff:ffff", NetworkType::Local),    // ::ffff:0:0/96
    ("::fffe:ffff:ffff", NetworkType::Clearnet), // ::ffff:0:0/96
    ("::1:0:0:0", NetworkType::Clearnet),        // ::ffff:0:0/96
    ("64:ff9b::", NetworkType::Local),           // 64:ff9b::/96
    ("64:ff9b::ffff:ffff", NetworkType::Local),  // 64:ff9b::/96
    (
        "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 64:ff9b::/96
    ("64:ff9b::1:0:0", NetworkType::Clearnet),   // 64:ff9b::/96
    ("100::", NetworkType::Local),               // 100::/64
    ("100::ffff:ffff:ffff:ffff", NetworkType::Local), // 100::/64
    (
        "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 100::/64
    ("100:0:0:1::", NetworkType::Clearnet),      // 100::/64
    ("2001::", NetworkType::Local),              // 2001::/32
    ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", NetworkType::Local), // 2001::/32
    (
        "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 2001::/32
    ("2001:1::", NetworkType::Clearnet),         // 2001::/32
    ("2001:2::", NetworkType::Local),            // 2001:2::/48
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", NetworkType::Local), // 2001:2::/48
    (
        "2001:1:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 2001:2::/48
    ("2001:2:1::", NetworkType::Clearnet),       // 2001:2::/48
    ("2001:db8::", NetworkType::Local),          // 2001:db8::/32
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", NetworkType::Local), // 2001:db8::/32
    (
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 2001:db8::/32
    ("2001:db9::", NetworkType::Clearnet),       // 2001:db8::/32
    ("2001:10::", NetworkType::Local),           // 2001:10::/28
    ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", NetworkType::Local), // 2001:10::/28
    (
        "2001:f:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // 2001:10::/28
    ("2001:20::", NetworkType::Clearnet),        // 2001:10::/28
    ("fc00::", NetworkType::Local),              // fc00::/7
    (
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Local,
    ), // fc00::/7
    (
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // fc00::/7
    ("fe00::", NetworkType::Clearnet),           // fc00::/7
    ("fe80::", NetworkType::Local),              // fe80::/10
    (
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Local,
    ), // fe80::/10
    (
        "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // fe80::/10
    ("fec0::", NetworkType::Clearnet),           // fe80::/10
    ("ff00::", NetworkType::Local),              // ff00::/8
    (
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Local,
    ), // ff00::/8
    (
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        NetworkType::Clearnet,
    ), // ff00::/8
];
