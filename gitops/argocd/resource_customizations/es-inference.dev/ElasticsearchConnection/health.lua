-- Argo CD health check for es-inference.dev/ElasticsearchConnection.
-- Reads the conditions the operator writes for a connection: Ready (reason Connected when the
-- cluster answers), Reconciling=True while a failed connection is retried, Stalled=True when a
-- person has to act, and InsecureSkipVerify=True while certificate checks are off. Written for
-- Argo CD's Lua (gopher-lua, Lua 5.1) with only the libraries argocd-cm scripts get: base,
-- package, table and Argo CD's safe os, which is no global: a script gets it from require("os").
-- Test cases: health_test.yaml and testdata/.
local hs = { status = "Progressing", message = "Waiting for the operator to check the connection" }

-- A connection that keeps failing for this long is Degraded even while the operator retries it.
local FAILING_FOR_SECONDS = 300

-- The clock: the global os where there is one (useOpenLibs), else Argo CD's safe os from
-- require("os"); nil if neither exists, and then a retried failure stays Progressing.
local clock = os
if clock == nil and require ~= nil then
  local ok, safe_os = pcall(require, "os")
  if ok then
    clock = safe_os
  end
end

local function condition(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(conditions, type_)
  local c = condition(conditions, type_)
  return c ~= nil and c.status == "True"
end

local function text(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return c.type .. " is " .. tostring(c.status)
end

local function div(a, b)
  return (a - a % b) / b
end

local function two_digits(n)
  if n < 10 then
    return "0" .. tostring(n)
  end
  return tostring(n)
end

-- The time `seconds` ago in the form Kubernetes writes lastTransitionTime (2006-01-02T15:04:05Z),
-- so the two compare as strings; nil without a clock. Computed from the clock's time() alone,
-- without the string library, which argocd-cm scripts do not get. The date is Howard Hinnant's
-- civil_from_days.
local function timestamp_ago(seconds)
  if type(clock) ~= "table" or clock.time == nil then
    return nil
  end
  local t = clock.time() - seconds
  local secs = t % 86400
  local z = div(t - secs, 86400) + 719468
  local era = div(z, 146097)
  local doe = z - era * 146097
  local yoe = div(doe - div(doe, 1460) + div(doe, 36524) - div(doe, 146096), 365)
  local doy = doe - (365 * yoe + div(yoe, 4) - div(yoe, 100))
  local mp = div(5 * doy + 2, 153)
  local day = doy - div(153 * mp + 2, 5) + 1
  local month = mp + 3
  if mp >= 10 then
    month = mp - 9
  end
  local year = yoe + era * 400
  if month <= 2 then
    year = year + 1
  end
  return tostring(year) .. "-" .. two_digits(month) .. "-" .. two_digits(day) .. "T"
    .. two_digits(div(secs, 3600)) .. ":" .. two_digits(div(secs % 3600, 60)) .. ":"
    .. two_digits(secs % 60) .. "Z"
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local conditions = obj.status.conditions
local generation = obj.metadata.generation
local ready = condition(conditions, "Ready")
if ready == nil then
  return hs
end

-- The status (and Ready) must describe the current spec.
if generation ~= nil then
  if obj.status.observedGeneration == nil or obj.status.observedGeneration ~= generation
    or ready.observedGeneration == nil or ready.observedGeneration ~= generation then
    hs.message = "Waiting for the operator to check generation " .. tostring(generation)
    return hs
  end
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  local insecure = condition(conditions, "InsecureSkipVerify")
  if insecure ~= nil and insecure.status == "True" then
    hs.message = hs.message .. ". Warning: " .. text(insecure)
  end
  return hs
end

-- A person has to act: a missing connection Secret or key, a client that cannot be built.
if is_true(conditions, "Stalled") then
  hs.status = "Degraded"
  hs.message = text(ready)
  return hs
end

-- Retried by the operator, but failing for a while: most likely the URL, the CA or the key.
local failing = ready.status == "False"
  and (ready.reason == "ConnectionFailed" or ready.reason == "InvalidReference")
if failing and ready.lastTransitionTime ~= nil then
  local since = timestamp_ago(FAILING_FOR_SECONDS)
  if since ~= nil and ready.lastTransitionTime <= since then
    hs.status = "Degraded"
    hs.message = text(ready) .. " (failing since " .. ready.lastTransitionTime .. ")"
    return hs
  end
end

if is_true(conditions, "Reconciling") or ready.status ~= "False" then
  hs.status = "Progressing"
  hs.message = text(ready)
  return hs
end

hs.status = "Degraded"
hs.message = text(ready)
return hs
