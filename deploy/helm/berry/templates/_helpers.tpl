{{/* The release's base name, at most 63 characters with the longest suffix added. */}}
{{- define "berry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "berry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: controlplane or edge. */}}
{{- define "berry.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "berry.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "berry.controlplane" -}}{{ include "berry.fullname" . }}-controlplane{{- end -}}
{{/* Headless service of every control-plane pod, ready or not: Raft peers find each other by it. */}}
{{- define "berry.peers" -}}{{ include "berry.fullname" . }}-controlplane-peers{{- end -}}
{{- define "berry.edge" -}}{{ include "berry.fullname" . }}-edge{{- end -}}
{{- define "berry.secret" -}}{{ .Values.auth.existingSecret | default (printf "%s-tokens" (include "berry.fullname" .)) }}{{- end -}}
{{- define "berry.domain" -}}{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}{{- end -}}

{{/* The name of control-plane pod i on the peers service: the same in --peers, --raft-listen and --grpc-advertise. */}}
{{- define "berry.peerHost" -}}
{{ include "berry.controlplane" .root }}-{{ .i }}.{{ include "berry.peers" .root }}.{{ include "berry.domain" .root }}
{{- end -}}

{{- define "berry.cluster" -}}{{ if gt (int .Values.controlPlane.replicas) 1 }}true{{ end }}{{- end -}}

{{- define "berry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "berry.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
