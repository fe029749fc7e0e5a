-- wrk: HEAD requests.
wrk.method = "HEAD"
