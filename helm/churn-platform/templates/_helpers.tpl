{{- define "churn.labels" -}}
app.kubernetes.io/name: churn-platform
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "churn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
