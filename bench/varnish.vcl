# Varnish in front of the bench origin. Varnish already honours the origin's
# Cache-Control (s-maxage, max-age) and keeps backend connections alive; on
# top of the built-in VCL this adds tag purges (a ban on Surrogate-Key, the
# lurker-friendly obj.* form) and the same Surrogate-Key hiding as the edge.
# bench/run fills in the @...@ placeholders.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}

acl purgers {
    "127.0.0.1";
}

sub vcl_recv {
    if (req.method == "BAN") {
        if (client.ip !~ purgers || !req.http.X-Tag) {
            return (synth(403, "Forbidden"));
        }
        # Tags are single tokens, matched as whole words of Surrogate-Key.
        ban("obj.http.Surrogate-Key ~ (^|\s)" + req.http.X-Tag + "($|\s)");
        return (synth(200, "Banned"));
    }
}

sub vcl_deliver {
    unset resp.http.Surrogate-Key;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
