{{/* Names. */}}
{{- define "wxpilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wxpilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wxpilot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wxpilot.labels" -}}
helm.sh/chart: {{ include "wxpilot.chart" . }}
{{ include "wxpilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "wxpilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wxpilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "wxpilot.componentLabels" -}}
{{ include "wxpilot.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "wxpilot.componentSelector" -}}
{{ include "wxpilot.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "wxpilot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wxpilot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "wxpilot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "wxpilot.secretName" -}}
{{- default (include "wxpilot.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Whether the chart manages a Secret with at least one key. */}}
{{- define "wxpilot.chartSecret" -}}
{{- $s := .Values.secrets -}}
{{- if and (not $s.existingSecret) (or $s.databaseUrl $s.redisUrl $s.masterKey $s.llm) -}}true{{- end -}}
{{- end -}}

{{/*
The settings file. `listen` and `data_dir` are fixed by the chart; the rest comes from
.Values.config. Nulls are left out (the binary's default applies).
*/}}
{{- define "wxpilot.configToml" -}}
{{- $jobs := dict "metrics_listen" (printf "0.0.0.0:%d" (int .Values.worker.metricsPort)) -}}
{{- $inference := dict "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.inference.containerPort))) -}}
{{- $fixed := dict "listen" (printf "0.0.0.0:%d" (int .Values.api.containerPort)) "data_dir" "/var/lib/wxpilot" "jobs" $jobs "inference" $inference -}}
{{- $all := merge $fixed (deepCopy .Values.config) -}}
# wxpilot settings, rendered by the Helm chart (keys: core/src/settings.rs).
{{ include "wxpilot.tomlTable" (dict "prefix" "" "table" $all) | trimPrefix "\n" }}
{{- end -}}

{{- define "wxpilot.tomlTable" -}}
{{- $prefix := .prefix -}}
{{- range $k, $v := .table }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ $k }} = {{ include "wxpilot.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- if kindIs "map" $v }}
{{- $name := ternary $k (printf "%s.%s" $prefix $k) (eq $prefix "") }}

[{{ $name }}]
{{- include "wxpilot.tomlTable" (dict "prefix" $name "table" $v) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "wxpilot.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- ternary "true" "false" . -}}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if kindIs "slice" . -}}
[{{- range $i, $e := . -}}{{- if $i }}, {{ end -}}{{- include "wxpilot.tomlValue" $e -}}{{- end -}}]
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Environment of every wxpilot container: config file, secrets, extras.
(dict "ctx" $ "hook" bool): the migration hook reads its own copy of a chart-managed Secret. */}}
{{- define "wxpilot.env" -}}
{{- $ctx := .ctx -}}
- name: WXPILOT_CONFIG
  value: /etc/wxpilot/wxpilot.toml
{{- $secret := include "wxpilot.secretName" $ctx }}
{{- if and .hook (not $ctx.Values.secrets.existingSecret) }}{{ $secret = printf "%s-migrate" (include "wxpilot.fullname" $ctx) }}{{ end }}
{{- $s := $ctx.Values.secrets }}
{{- if $s.existingSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: DATABASE_URL}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: REDIS_URL, optional: true}
- name: WXPILOT_MASTER_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: WXPILOT_MASTER_KEY}
- name: WXPILOT_PREVIOUS_MASTER_KEYS
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: WXPILOT_PREVIOUS_MASTER_KEYS, optional: true}
{{- range $s.llmKeys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ . }}, optional: true}
{{- end }}
{{- else }}
{{- if $s.databaseUrl }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: DATABASE_URL}
{{- end }}
{{- if $s.redisUrl }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: REDIS_URL}
{{- end }}
{{- if $s.masterKey }}
- name: WXPILOT_MASTER_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: WXPILOT_MASTER_KEY}
{{- end }}
{{- range $k, $_ := $s.llm }}
- name: {{ $k }}
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $k }}}
{{- end }}
{{- end }}
{{- range $k, $v := $ctx.Values.extraEnv }}
- name: {{ $k }}
  value: {{ include "wxpilot.tomlValue" $v | quote }}
{{- end }}
{{- end -}}

{{- define "wxpilot.volumeMounts" -}}
- name: config
  mountPath: /etc/wxpilot
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/wxpilot
{{- end -}}

{{- define "wxpilot.volumes" -}}
- name: config
  configMap:
    name: {{ include "wxpilot.fullname" .ctx }}{{ if .hook }}-migrate{{ end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .ctx.Values.tmpDir.sizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .ctx.Values.dataDir.sizeLimit }}
{{- end -}}

{{/* Pod-level fields shared by every wxpilot pod. */}}
{{- define "wxpilot.podCommon" -}}
serviceAccountName: {{ include "wxpilot.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Annotations that roll pods when the config or the chart Secret changes. */}}
{{- define "wxpilot.podAnnotations" -}}
checksum/config: {{ include "wxpilot.configToml" . | sha256sum }}
{{- if include "wxpilot.chartSecret" . }}
checksum/secret: {{ toJson .Values.secrets | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
