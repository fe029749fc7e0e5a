-- wrk: POST /0.1/token with Basic credentials and a JSON body taken from the environment.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
