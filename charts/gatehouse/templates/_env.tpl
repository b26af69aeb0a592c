{{/*
Environment of the services. The README's configuration tables are the services' interface; every
variable here is one of them.
*/}}

{{/* Settings both services share, for their ConfigMaps. Call with (dict "root" $ "component" "user"). */}}
{{- define "gatehouse.sharedConfig" -}}
{{- $root := .root -}}
GRPC_ADDR: ":{{ include "gatehouse.grpcPort" . }}"
HTTP_ADDR: ":{{ include "gatehouse.httpPort" . }}"
HEALTH_ADDR: ":8090"
METRICS_ADDR: ":9090"
{{- if include "gatehouse.tlsSource" $root }}
TLS_CERT_FILE: /etc/gatehouse/tls/tls.crt
TLS_KEY_FILE: /etc/gatehouse/tls/tls.key
TLS_CA_FILE: /etc/gatehouse/tls/ca.crt
TLS_CLIENT_AUTH: {{ $root.Values.tls.clientAuth | quote }}
{{- end }}
GRPC_REFLECTION: {{ $root.Values.grpc.reflection | toString | quote }}
GRPC_MAX_CONNECTION_AGE: {{ $root.Values.grpc.maxConnectionAge | quote }}
DRAIN_DELAY: "{{ $root.Values.lifecycle.drainDelaySeconds }}s"
SHUTDOWN_TIMEOUT: "{{ $root.Values.lifecycle.shutdownTimeoutSeconds }}s"
LOG_LEVEL: {{ $root.Values.logLevel | quote }}
JWT_ISSUER: {{ include "gatehouse.issuer" $root | quote }}
JWT_AUDIENCE: {{ $root.Values.jwt.audience | quote }}
{{- /* Absent from a release upgraded with --reuse-values: keep the old issuer's tokens valid. */}}
{{- with (hasKey $root.Values.jwt "acceptedIssuers" | ternary $root.Values.jwt.acceptedIssuers (list "gatehouse-auth")) }}
JWT_ACCEPTED_ISSUERS: {{ join "," . | quote }}
{{- end }}
{{- if eq (include "gatehouse.databaseMode" .) "sqlite" }}
DATABASE_URL: "sqlite:///data/{{ .component }}.db"
{{- end }}
OTEL_SERVICE_NAME: "gatehouse-{{ .component }}"
{{- with include "gatehouse.otlpEndpoint" $root }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
OTEL_EXPORTER_OTLP_INSECURE: {{ $root.Values.tracing.insecure | toString | quote }}
OTEL_TRACES_SAMPLER: {{ $root.Values.tracing.sampler | quote }}
{{- if hasSuffix "traceidratio" $root.Values.tracing.sampler }}
OTEL_TRACES_SAMPLER_ARG: {{ $root.Values.tracing.samplerArg | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Per-pod environment of both services: downward API values and the PostgreSQL URL from a Secret. */}}
{{- define "gatehouse.podEnv" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .component -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),service.instance.id=$(POD_NAME)"
{{- $mode := include "gatehouse.databaseMode" . }}
{{- if eq $mode "postgresql-external" }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $svc.database.existingSecret }}
      key: {{ $svc.database.existingSecretKey }}
{{- else if eq $mode "postgresql-bundled" }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gatehouse.componentName" (dict "root" $root "component" "postgresql") }}
      key: {{ .component }}-url
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Checksum annotation of a service's database Secret, so pods roll when its URL changes. */}}
{{- define "gatehouse.databaseChecksum" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .component -}}
{{- $mode := include "gatehouse.databaseMode" . -}}
{{- if eq $mode "postgresql-external" -}}
checksum/database: {{ include "gatehouse.existingSecretChecksum" (dict "root" $root "name" $svc.database.existingSecret) }}
{{- else if eq $mode "postgresql-bundled" -}}
checksum/database: {{ include "gatehouse.memo" (list $root "postgresql" "gatehouse.postgresqlSecretData") | sha256sum }}
{{- end -}}
{{- end -}}

{{/*
gRPC probes: startup and liveness ask for "liveness" (the process), readiness for "" (dependencies too).
They go to the plaintext health-only port (HEALTH_ADDR): the kubelet's gRPC probe cannot speak TLS, and
an exec probe would start a process every few seconds. That port answers grpc.health.v1 and nothing else.
*/}}
{{- define "gatehouse.probes" -}}
{{- $port := 8090 -}}
startupProbe:
  grpc:
    port: {{ $port }}
    service: liveness
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 60
readinessProbe:
  grpc:
    port: {{ $port }}
    service: ""
  periodSeconds: 5
  timeoutSeconds: 2
  successThreshold: 1
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ $port }}
    service: liveness
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
{{- end -}}

{{/* Deployment strategy: Recreate on SQLite (one writer, a ReadWriteOnce volume), else zero-downtime rolling. */}}
{{- define "gatehouse.strategy" -}}
{{- if eq (include "gatehouse.databaseMode" .) "sqlite" -}}
type: Recreate
{{- else -}}
type: RollingUpdate
rollingUpdate:
  maxUnavailable: 0
  maxSurge: 1
{{- end -}}
{{- end -}}
