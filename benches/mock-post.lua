-- wrk script: POST a ~200-byte execute body for the demo sub-organization.
-- The access token comes from the TOKEN environment variable (see mock-wrk.sh).

local token = os.getenv("TOKEN")
if token == nil or token == "" then
  error("set TOKEN to an access token from POST /oauth/token")
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-genesys-org-id"] = "22222222-2222-4222-8222-222222222222"
wrk.body = '{"org_id":"22222222-2222-4222-8222-222222222222",'
  .. '"phone":"+15551234567","customer":{"id":"c-000123","tier":"gold",'
  .. '"segments":["retail","emea"]},"interaction":{"queue":"support",'
  .. '"channel":"voice","attempt":1}}'

-- wrk counts non-2xx/3xx responses itself, so no response() hook is needed: defining one
-- would make wrk run Lua for every response and lower its own request rate.
function done(summary, latency, requests)
  io.write(string.format("body bytes: %d\n", #wrk.body))
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
