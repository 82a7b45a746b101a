{{- define "sextant.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sextant.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- /* Release-chart, as since 0.1.0: renaming would orphan the registry's claim. */ -}}
{{- printf "%s-%s" .Release.Name (include "sextant.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sextant.labels" -}}
app.kubernetes.io/name: {{ include "sextant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sextant
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* dict "root" $ "component" "gateway" */}}
{{- define "sextant.selector" -}}
app.kubernetes.io/name: {{ include "sextant.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sextant.componentLabels" -}}
{{ include "sextant.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sextant.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "sextant.cudaImage" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{ .Values.image.cudaTagSuffix }}
{{- end -}}

{{- define "sextant.url" -}}
http://{{ include "sextant.fullname" .root }}-{{ .component }}:{{ .port }}
{{- end -}}

{{- define "sextant.secretName" -}}
{{ include "sextant.fullname" . }}-secrets
{{- end -}}

{{- define "sextant.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "sextant.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "sextant.internalTokenSecretName" -}}
{{ .Values.internalAuth.existingSecret | default (include "sextant.secretName" .) }}
{{- end -}}

{{/*
The internal token the chart manages: the given one, else the one already in the release's
Secret (so upgrades keep it), else a new random one. Computed once per render and remembered,
because the Secret, the migration hook's Secret and the pods' checksums all need the same value.
*/}}
{{- define "sextant.internalToken" -}}
{{- if not (hasKey .Release "sextantInternalToken") -}}
{{- $token := .Values.internalAuth.token -}}
{{- if not $token -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "sextant.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "internal-token") -}}
{{- $token = index $existing.data "internal-token" | b64dec -}}
{{- else -}}
{{- $token = randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Release "sextantInternalToken" $token -}}
{{- end -}}
{{- .Release.sextantInternalToken -}}
{{- end -}}

{{/* The admin console's token: the given one, else the release Secret's (kept on upgrade), else a new random one; once per render. */}}
{{- define "sextant.adminToken" -}}
{{- if not (hasKey .Release "sextantAdminToken") -}}
{{- $token := .Values.admin.token -}}
{{- if not $token -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "sextant.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "admin-token") -}}
{{- $token = index $existing.data "admin-token" | b64dec -}}
{{- else -}}
{{- $token = randAlphaNum 40 -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Release "sextantAdminToken" $token -}}
{{- end -}}
{{- .Release.sextantAdminToken -}}
{{- end -}}

{{/* The chart's Secret's stringData (also hashed into the pods' checksum annotations). */}}
{{- define "sextant.secretData" -}}
{{- if and .Values.connector.enabled .Values.connector.salesforce.privateKey (not .Values.connector.salesforce.existingSecret) }}
connected-app.key: {{ .Values.connector.salesforce.privateKey | quote }}
{{- end }}
{{- if and .Values.featureStore.databaseUrl (not .Values.featureStore.existingSecret) }}
database-url: {{ .Values.featureStore.databaseUrl | quote }}
{{- end }}
{{- if and .Values.featureStore.sentimentModelUrl (not .Values.featureStore.existingSecret) }}
sentiment-model-url: {{ .Values.featureStore.sentimentModelUrl | quote }}
{{- end }}
{{- if not .Values.gateway.auth.existingSecret }}
{{- with .Values.gateway.auth.rs256PublicKeyPem }}
gateway-rs256-public-key.pem: {{ . | quote }}
{{- end }}
{{- with .Values.gateway.auth.hs256Secret }}
gateway-hs256-secret: {{ . | quote }}
{{- end }}
{{- end }}
{{- if not .Values.internalAuth.existingSecret }}
internal-token: {{ include "sextant.internalToken" . | quote }}
{{- with .Values.internalAuth.previousTokens }}
internal-token-previous: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- if and .Values.admin.enabled (not .Values.admin.existingSecret) }}
admin-token: {{ include "sextant.adminToken" . | quote }}
{{- end }}
{{- end -}}

{{/*
checksum/secret: the chart's Secret data plus, where the cluster can be asked (install and
upgrade, not `helm template`), the data of the existing Secrets this pod reads. A changed key
rolls the pods.
dict "root" $ "existing" (list "name" …)
*/}}
{{- define "sextant.secretChecksum" -}}
{{- $parts := list (include "sextant.secretData" .root) -}}
{{- range .existing -}}
{{- if . -}}
{{- $s := lookup "v1" "Secret" $.root.Release.Namespace . -}}
{{- if $s -}}
{{- $parts = append $parts (toJson ($s.data | default dict)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $parts | sha256sum -}}
{{- end -}}

{{/* Pod-level settings every pod of the chart shares. dict "root" $ "c" <component values> */}}
{{- define "sextant.podCommon" -}}
{{- /* A pre-install hook runs before the chart's ServiceAccount exists: hooks use the namespace's default. */ -}}
serviceAccountName: {{ if and .hook .root.Values.serviceAccount.create }}default{{ else }}{{ include "sextant.serviceAccountName" .root }}{{ end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod metadata annotations. dict "root" $ "c" <component values> "config" <config text> "existing" (list …) */}}
{{- define "sextant.podAnnotations" -}}
checksum/config: {{ .config | sha256sum }}
checksum/secret: {{ include "sextant.secretChecksum" (dict "root" .root "existing" .existing) }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Container settings every service shares. dict "root" $ "port" <port> "readiness" <path> */}}
{{- define "sextant.containerCommon" -}}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
ports:
  - name: http
    containerPort: {{ .port }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: {{ .readiness }}
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* Environment every Sextant container shares: the internal token (and, for the services that
verify tokens, the previous keys still accepted), then extraEnv.
dict "root" $ "prefix" "SEXTANT_GATEWAY" "c" <component values> ["verifies" true] */}}
{{- define "sextant.commonEnv" -}}
- name: {{ .prefix }}__INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "sextant.internalTokenSecretName" .root }}
      key: internal-token
{{- if and .verifies (or .root.Values.internalAuth.previousTokens .root.Values.internalAuth.existingSecret) }}
{{- /* With existingSecret, the key is optional: present only during a rotation. */}}
- name: {{ .prefix }}__INTERNAL_TOKEN_PREVIOUS
  valueFrom:
    secretKeyRef:
      name: {{ include "sextant.internalTokenSecretName" .root }}
      key: internal-token-previous
      optional: {{ not .root.Values.internalAuth.previousTokens }}
{{- end }}
- name: TMPDIR
  value: /tmp
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The ConfigMap data every service shares (logging). */}}
{{- define "sextant.commonConfig" -}}
SEXTANT_LOG_FORMAT: {{ .Values.logFormat | quote }}
RUST_LOG: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* HorizontalPodAutoscaler and PodDisruptionBudget. dict "root" $ "c" <values> "component" "gateway" */}}
{{- define "sextant.scaling" -}}
{{- $name := printf "%s-%s" (include "sextant.fullname" .root) .component -}}
{{- if .c.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "sextant.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ .c.autoscaling.minReplicas }}
  maxReplicas: {{ .c.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .c.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- $least := ternary .c.autoscaling.minReplicas .c.replicas .c.autoscaling.enabled -}}
{{- /* A budget over a single pod would block every node drain. */}}
{{- if and .c.podDisruptionBudget.enabled (gt (int $least) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "sextant.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  minAvailable: {{ .c.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "sextant.selector" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The feature store's export claim (the chart's or existingClaim); empty when exports are on an emptyDir. */}}
{{- define "sextant.exportClaim" -}}
{{- $p := .Values.featureStore.exports.persistence -}}
{{- if $p.enabled -}}
{{- $p.existingClaim | default (printf "%s-feature-store-exports" (include "sextant.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{/* The claim Ballista's pods mount read-only: ballista.data.existingClaim, else the feature store's export claim when ballista.data.featureStoreExports; empty: none. */}}
{{- define "sextant.ballistaDataClaim" -}}
{{- if .Values.ballista.data.existingClaim -}}
{{- .Values.ballista.data.existingClaim -}}
{{- else if .Values.ballista.data.featureStoreExports -}}
{{- include "sextant.exportClaim" . -}}
{{- end -}}
{{- end -}}

{{/* The Ingress's TLS Secret: ingress.tls.secretName, else the name cert-manager fills when an issuer is set; empty: no TLS. */}}
{{- define "sextant.ingressTlsSecret" -}}
{{- $i := .Values.ingress -}}
{{- if $i.tls.secretName -}}
{{- $i.tls.secretName -}}
{{- else if or $i.certManager.clusterIssuer $i.certManager.issuer -}}
{{- printf "%s-gateway-tls" (include "sextant.fullname" .) -}}
{{- end -}}
{{- end -}}
