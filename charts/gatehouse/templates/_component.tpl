{{/* Objects both services have, rendered by the user/ and auth/ templates. Call with (dict "root" $ "component" "user"). */}}

{{- define "gatehouse.serviceAccount" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "gatehouse.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "gatehouse.componentLabels" . | nindent 4 }}
  {{- with $svc.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# The services call no Kubernetes API.
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{/* ClusterIP Service with the gRPC, HTTP and metrics ports. */}}
{{- define "gatehouse.service" -}}
{{- $svc := index .root.Values .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "gatehouse.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "gatehouse.componentLabels" . | nindent 4 }}
    # The ServiceMonitor's jobLabel: Prometheus names the job gatehouse-<component> whatever the
    # release is called, so files/prometheus-rules.yaml can select on it unchanged.
    gatehouse.dev/job: gatehouse-{{ .component }}
  {{- with $svc.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "gatehouse.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ include "gatehouse.grpcPort" . }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: http
      port: {{ include "gatehouse.httpPort" . }}
      targetPort: http
      protocol: TCP
      appProtocol: {{ ternary "https" "http" (not (empty (include "gatehouse.tlsSource" .root))) }}
    - name: metrics
      port: 9090
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end -}}

{{/* SQLite claim (SQLite mode, unless an existing claim is used). */}}
{{- define "gatehouse.sqliteClaim" -}}
{{- $svc := index .root.Values .component -}}
{{- if and (eq (include "gatehouse.databaseMode" .) "sqlite") (not $svc.persistence.existingClaim) }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "gatehouse.sqliteClaimName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "gatehouse.componentLabels" . | nindent 4 }}
  {{- with include "gatehouse.keepAnnotation" .root }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  # ReadWriteOnce: SQLite wants one writer on one node, which is also why the service runs one
  # replica and the Deployment uses the Recreate strategy in this mode.
  accessModes:
    - ReadWriteOnce
  {{- with $svc.persistence.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $svc.persistence.size }}
{{- end }}
{{- end -}}

{{- define "gatehouse.hpa" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "gatehouse.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "gatehouse.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "gatehouse.componentName" . }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      # gRPC clients hold connections: scale down slowly so they move over without a burst.
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
{{- end }}
{{- end -}}

{{- define "gatehouse.pdb" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "gatehouse.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "gatehouse.componentLabels" . | nindent 4 }}
spec:
  # maxUnavailable, not minAvailable: with one replica (SQLite) a drain still proceeds.
  maxUnavailable: {{ $svc.podDisruptionBudget.maxUnavailable }}
  # Pods that are not ready protect nothing: let them be evicted (e.g. a crash-looping pod on a draining node).
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "gatehouse.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A NetworkPolicy peer list: the given peers, as YAML, indented for an ingress rule's `from`. */}}
{{- define "gatehouse.peers" -}}
{{- toYaml . -}}
{{- end -}}

{{/* Peer selecting pods of this release's component. Call with (dict "root" $ "component" "auth"). */}}
{{- define "gatehouse.releasePeer" -}}
- podSelector:
    matchLabels:
      {{- include "gatehouse.selectorLabels" . | nindent 6 }}
{{- end -}}
