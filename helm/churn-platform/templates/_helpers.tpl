{{/* Labels of every object; "churn.selector" with a component for selectors. */}}
{{- define "churn.labels" -}}
app.kubernetes.io/name: churn-platform
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: churn-platform
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
churn-platform/environment: {{ .Values.environment }}
{{- end -}}

{{- define "churn.selector" -}}
app.kubernetes.io/name: churn-platform
app.kubernetes.io/part-of: churn-platform
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "churn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "churn.fullname" -}}
{{ printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Pod securityContext of every platform pod: non-root (the platform image's uid), no privilege. */}}
{{- define "churn.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 0
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "churn.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "churn.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Where the services are: in-chart by default, external when a value says so. */}}
{{- define "churn.s3Endpoint" -}}
{{- if .Values.s3.externalEndpoint -}}
{{ .Values.s3.externalEndpoint }}
{{- else -}}
http://{{ .Release.Name }}-minio:9000
{{- end -}}
{{- end -}}

{{- define "churn.pgHost" -}}
{{- if .Values.postgres.cloudnativepg.enabled -}}
{{ .Release.Name }}-pg-rw
{{- else -}}
{{ .Values.postgres.externalHost }}
{{- end -}}
{{- end -}}

{{- define "churn.mlflowUrl" -}}
http://{{ .Release.Name }}-mlflow:5000
{{- end -}}

{{- define "churn.pushgatewayUrl" -}}
http://{{ .Release.Name }}-pushgateway:9091
{{- end -}}
