{{/*
signet.name is the chart name, or nameOverride.
*/}}
{{- define "signet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 48 | trimSuffix "-" }}
{{- end }}

{{/*
signet.fullname is the prefix of every object's name: fullnameOverride, else
the release name when it contains the chart name, else <release>-<chart>. At
most 48 characters, so "<fullname>-webhook-cert" stays a 63-character label.
*/}}
{{- define "signet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names of the objects other objects or the webhook's flags refer to. */}}
{{- define "signet.serviceName" -}}{{ include "signet.fullname" . }}-webhook{{- end }}
{{- define "signet.validatingName" -}}{{ include "signet.fullname" . }}-validating{{- end }}
{{- define "signet.mutatingName" -}}{{ include "signet.fullname" . }}-mutating{{- end }}
{{- define "signet.certSecretName" -}}{{ include "signet.fullname" . }}-webhook-cert{{- end }}
{{- define "signet.certManagerSecretName" -}}{{ include "signet.fullname" . }}-webhook-tls{{- end }}
{{- define "signet.servingCertificateName" -}}{{ include "signet.fullname" . }}-serving{{- end }}
{{- define "signet.uninstallName" -}}{{ include "signet.fullname" . }}-uninstall{{- end }}

{{- define "signet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "signet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "signet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: signet
{{- end }}

{{/*
signet.selectorLabels select the webhook Pods (Deployment, Service, PDB,
NetworkPolicy, topology spread). The component keeps the uninstall hook's
Pod out of them. Immutable in a Deployment: never change them.
*/}}
{{- define "signet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* The image reference: digest wins over tag; tag defaults to appVersion. */}}
{{- define "signet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
signet.exemptNamespaces is the comma-separated list of namespaces never
judged: exemptNamespaces plus the release namespace. The webhook's
--exempt-namespaces and the configurations' namespaceSelector both use it.
*/}}
{{- define "signet.exemptNamespaces" -}}
{{- append .Values.exemptNamespaces .Release.Namespace | uniq | join "," }}
{{- end }}

{{/*
signet.namespaceSelector keeps the exempt namespaces away from the webhooks
on namespaced resources, ANDed with webhook.namespaceSelector.
*/}}
{{- define "signet.namespaceSelector" -}}
{{- $extra := .Values.webhook.namespaceSelector -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
    {{- range splitList "," (include "signet.exemptNamespaces" .) }}
    - {{ . | quote }}
    {{- end }}
  {{- with $extra.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $extra.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
signet.workloads are the resources whose images Signet judges (and pins),
with the path of their Pod spec in CEL: the webhooks on them skip UPDATEs
that leave every image as it was. They mirror pkg/admission's table of
kinds (admission.Kinds, rendered into config/webhook/manifests.yaml); the
chart test fails when they drift apart.
*/}}
{{- define "signet.workloads" -}}
- {resource: cronjobs, group: batch, spec: ".?spec.?jobTemplate.?spec.?template.?spec"}
- {resource: daemonsets, group: apps, spec: ".?spec.?template.?spec"}
- {resource: deployments, group: apps, spec: ".?spec.?template.?spec"}
- {resource: jobs, group: batch, spec: ".?spec.?template.?spec"}
- {resource: pods, group: "", spec: ".?spec", subresources: [pods/ephemeralcontainers]}
- {resource: replicasets, group: apps, spec: ".?spec.?template.?spec"}
- {resource: replicationcontrollers, group: "", spec: ".?spec.?template.?spec"}
- {resource: statefulsets, group: apps, spec: ".?spec.?template.?spec"}
{{- end }}

{{/*
signet.webhook renders one webhook entry. Arguments (a dict): root (the
chart context), name, path, rules (list of RuleWithOperations), spec (the
CEL path of the Pod spec, empty for none), namespaced, mutating.
*/}}
{{- define "signet.webhook" -}}
{{- $root := .root }}
- name: {{ .name }}
  admissionReviewVersions:
  - v1
  clientConfig:
    service:
      name: {{ include "signet.serviceName" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ .path }}
  failurePolicy: {{ $root.Values.webhook.failurePolicy }}
  matchPolicy: Equivalent
  {{- if .spec }}
  matchConditions:
  - name: create-or-images-changed
    expression: {{ printf "request.operation != 'UPDATE' || ['initContainers', 'containers', 'ephemeralContainers'].exists(k, object%[1]s[?k].orValue([]).map(c, c.?image.orValue('')) != oldObject%[1]s[?k].orValue([]).map(c, c.?image.orValue(''))) || object%[1]s.?volumes.orValue([]).filter(v, has(v.image)).map(v, v.image.?reference.orValue('')) != oldObject%[1]s.?volumes.orValue([]).filter(v, has(v.image)).map(v, v.image.?reference.orValue(''))" .spec | quote }}
  {{- end }}
  {{- if .namespaced }}
  {{- include "signet.namespaceSelector" $root | nindent 2 }}
  {{- end }}
  {{- if .mutating }}
  reinvocationPolicy: Never
  {{- end }}
  rules:
  {{- toYaml .rules | nindent 2 }}
  sideEffects: None
  timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
{{- end }}

{{/* The cert-manager CA injection annotation of both configurations. */}}
{{- define "signet.caInjection" -}}
{{- if .Values.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "signet.servingCertificateName" .) }}
{{- end }}
{{- end }}

{{/*
signet.checks fails the render on combinations the schema cannot express.
*/}}
{{- define "signet.checks" -}}
{{- $budget := add .Values.shutdownDelaySeconds .Values.webhook.timeoutSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $budget) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed shutdownDelaySeconds (%v) + webhook.timeoutSeconds (%v): a stopping replica must finish the admissions it still receives" .Values.terminationGracePeriodSeconds .Values.shutdownDelaySeconds .Values.webhook.timeoutSeconds) }}
{{- end }}
{{- end }}
