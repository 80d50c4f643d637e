-- Argo CD health check for es-inference.dev/InferenceEndpoint.
-- Reads the operator's kstatus conditions (Ready, Reconciling, Stalled) and observedGeneration,
-- with the same precedence as kstatus, so Argo CD and Flux agree. Written for Argo CD's Lua
-- (gopher-lua, Lua 5.1). Test cases: health_test.yaml and testdata/.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

local function condition(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function text(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return "Ready is " .. tostring(c.status)
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
local ready = condition(obj.status.conditions, "Ready")
if ready == nil then
  return hs
end

-- The status (and Ready) must describe the current spec: until then the spec is not acted on.
if generation ~= nil then
  if obj.status.observedGeneration == nil or obj.status.observedGeneration ~= generation
    or ready.observedGeneration == nil or ready.observedGeneration ~= generation then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end

local reconciling = condition(obj.status.conditions, "Reconciling")
if (reconciling ~= nil and reconciling.status == "True") or ready.reason == "Creating"
  or ready.status ~= "False" then
  -- Being retried by the operator on its own, or a create is in flight.
  hs.status = "Progressing"
  hs.message = text(ready)
  return hs
end

-- Ready=False and Stalled=True (a person has to act), or any other failure that the operator
-- is not retrying.
hs.status = "Degraded"
hs.message = text(ready)
return hs
