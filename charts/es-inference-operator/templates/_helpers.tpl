{{/*
Chart name, truncated to 63 characters (the limit of a label value).
*/}}
{{- define "es-inference-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources: <release>-<chart>, or the release name alone when it
already contains the chart name. Truncated to 63 characters.
*/}}
{{- define "es-inference-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "es-inference-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "es-inference-operator.labels" -}}
helm.sh/chart: {{ include "es-inference-operator.chart" . }}
{{ include "es-inference-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: es-inference-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: the Deployment's selector, the Service's and the ServiceMonitor's. Never change
them in an upgrade (a Deployment's selector is immutable).
*/}}
{{- define "es-inference-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "es-inference-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "es-inference-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "es-inference-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set, else repository:tag (tag defaults
to the chart's appVersion).
*/}}
{{- define "es-inference-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: leaderElection.enabled when set, otherwise replicaCount > 1.
*/}}
{{- define "es-inference-operator.leaderElection" -}}
{{- if kindIs "bool" .Values.leaderElection.enabled }}
{{- .Values.leaderElection.enabled }}
{{- else }}
{{- gt (int .Values.replicaCount) 1 }}
{{- end }}
{{- end }}

{{/*
Where the Elasticsearch credentials and CA are mounted (read-only) in the container.
*/}}
{{- define "es-inference-operator.mountRoot" -}}
/etc/es-inference-operator
{{- end }}

{{/*
Checks of combinations the schema cannot express well, with messages that say what to do.
Included by the Deployment, so every render runs them.
*/}}
{{- define "es-inference-operator.validate" -}}
{{- $es := .Values.elasticsearch }}
{{- if and (not $es.url) (or $es.auth.apiKey.existingSecret $es.auth.basic.username $es.auth.basic.existingSecret $es.tls.ca.existingSecret $es.tls.ca.existingConfigMap) }}
{{- fail "\n\nelasticsearch.auth and elasticsearch.tls configure the default cluster, which needs elasticsearch.url, e.g.\n  --set elasticsearch.url=https://my-cluster.es.example.com:443\nWithout a default cluster, every InferenceEndpoint names its cluster in spec.elasticsearchRef (an ElasticsearchConnection or an ECK Elasticsearch).\n" }}
{{- end }}
{{- if and $es.url (hasPrefix "http://" $es.url) (not .Values.security.allowPlaintextElasticsearch) }}
{{- fail "\n\nelasticsearch.url is plaintext http://: the operator's credentials and secret settings would cross the network unencrypted, and the operator refuses to start. Use https://, or set security.allowPlaintextElasticsearch=true." }}
{{- end }}
{{- $auth := .Values.elasticsearch.auth }}
{{- if and $auth.apiKey.existingSecret (or $auth.basic.username $auth.basic.existingSecret) }}
{{- fail "\n\nelasticsearch.auth: set either apiKey or basic, not both." }}
{{- end }}
{{- if or (and $auth.basic.username (not $auth.basic.existingSecret)) (and $auth.basic.existingSecret (not $auth.basic.username)) }}
{{- fail "\n\nelasticsearch.auth.basic needs both username and existingSecret (the Secret with the password)." }}
{{- end }}
{{- if and .Values.elasticsearch.tls.ca.existingSecret .Values.elasticsearch.tls.ca.existingConfigMap }}
{{- fail "\n\nelasticsearch.tls.ca: set either existingSecret or existingConfigMap, not both." }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (ne (include "es-inference-operator.leaderElection" .) "true") }}
{{- fail (printf "\n\nreplicaCount is %d but leaderElection.enabled is false: replicas would reconcile the same resources at once. Enable leader election or use one replica." (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (lt (int .Values.replicaCount) 2) }}
{{- fail "\n\npodDisruptionBudget.enabled needs replicaCount >= 2: with one replica and minAvailable 1 the budget blocks every node drain." }}
{{- end }}
{{- end }}

{{/*
What the operator needs where it watches InferenceEndpoints, and nothing more (src/rbac.rs lists
the same rules; a test compares them). One rule per resource.
*/}}
{{- define "es-inference-operator.watchedRules" -}}
# List, watch and patch (the finalizer) InferenceEndpoints.
- apiGroups: ["es-inference.dev"]
  resources: ["inferenceendpoints"]
  verbs: ["list", "watch", "patch"]
# Write their status (server-side apply).
- apiGroups: ["es-inference.dev"]
  resources: ["inferenceendpoints/status"]
  verbs: ["patch"]
# Read the Secrets that InferenceEndpoints reference. Never written.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Watch ElasticsearchConnections, read the referenced one, and write their status.
- apiGroups: ["es-inference.dev"]
  resources: ["elasticsearchconnections"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["es-inference.dev"]
  resources: ["elasticsearchconnections/status"]
  verbs: ["patch"]
# Read a connection's CA from a ConfigMap (watched by metadata only). Never written.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Read an ECK Elasticsearch named by elasticsearchRef (its TLS settings).
- apiGroups: ["elasticsearch.k8s.elastic.co"]
  resources: ["elasticsearches"]
  verbs: ["get"]
# Record Events about InferenceEndpoints and ElasticsearchConnections.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
