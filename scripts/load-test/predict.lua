-- wrk script for POST /predict: rotates over single-image requests to the base model, the LoRA
-- adapter and the DyLoRA adapter at rank 2 (one third each), and prints one machine-readable line.
-- Pixels are random in [0, 1] (fixed seed): the cost of a forward does not depend on their values.
math.randomseed(42)
local function image()
  local px = {}
  for i = 1, 784 do px[i] = string.format("%.3f", math.random()) end
  return "[" .. table.concat(px, ",") .. "]"
end
local headers = { ["Content-Type"] = "application/json" }
local bodies = {
  '{"pixels": ' .. image() .. ', "adapter": "__base__"}',
  '{"pixels": ' .. image() .. ', "adapter": "worst-class"}',
  '{"pixels": ' .. image() .. ', "adapter": "worst-class-dylora", "rank": 2}',
}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/predict", headers, bodies[i])
end

local non2xx = 0
response = function(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f socket_errors=%d status_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
