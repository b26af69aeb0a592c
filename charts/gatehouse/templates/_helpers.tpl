{{/*
Helpers of the gatehouse chart. Component templates take a dict with the root context (`root`) and the
component name (`component`: user, auth, postgresql, jaeger, test).
*/}}

{{/* Chart name, overridable. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: <release>-gatehouse, or the release name when it already contains the chart name. */}}
{{- define "gatehouse.fullname" -}}
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

{{/* Name of a component's resources: <fullname>-<component>, at most 63 characters. */}}
{{- define "gatehouse.componentName" -}}
{{- printf "%s-%s" (include "gatehouse.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. Call with the root context. */}}
{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component's pods (immutable in Deployments: never add to these). */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of a component's resources. */}}
{{- define "gatehouse.componentLabels" -}}
{{ include "gatehouse.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Fully qualified DNS name of a Service of this release: <name>.<namespace>.svc.<clusterDomain>. */}}
{{- define "gatehouse.serviceHost" -}}
{{- printf "%s.%s.svc.%s" .name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/*
The issuer URL: jwt.issuer, else the Auth Service's in-cluster HTTP URL. "gatehouse-auth", the default
before the issuer was a URL, reads as unset: `helm upgrade --reuse-values` keeps old values.
*/}}
{{- define "gatehouse.issuer" -}}
{{- if and .Values.jwt.issuer (ne .Values.jwt.issuer "gatehouse-auth") -}}
{{- .Values.jwt.issuer -}}
{{- else -}}
{{- printf "%s://%s:8082" (ternary "https" "http" (not (empty (include "gatehouse.tlsSource" .)))) (include "gatehouse.serviceHost" (dict "root" . "name" (include "gatehouse.componentName" (dict "root" . "component" "auth")))) -}}
{{- end -}}
{{- end -}}

{{/* Container ports of the services (fixed: the README documents them). */}}
{{- define "gatehouse.grpcPort" -}}
{{- if eq .component "user" }}50051{{ else }}50052{{ end -}}
{{- end -}}
{{- define "gatehouse.httpPort" -}}
{{- if eq .component "user" }}8081{{ else }}8082{{ end -}}
{{- end -}}

{{/* Image reference of a service: repository@digest, or repository:tag (tag: service, global, appVersion). */}}
{{- /* A service's image: image.registry, when set, replaces everything of the
repository but its last path element (gatehouse-user, gatehouse-auth). */ -}}
{{- define "gatehouse.image" -}}
{{- $svc := index .root.Values .component -}}
{{- $repo := $svc.image.repository -}}
{{- with .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) (base $repo) -}}
{{- end -}}
{{- if $svc.image.digest -}}
{{- printf "%s@%s" $repo $svc.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (coalesce $svc.image.tag .root.Values.image.tag .root.Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "gatehouse.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/*
Storage mode of a service: "postgresql-external" (its database.existingSecret), "postgresql-bundled"
(postgresql.enabled), or "sqlite" (a PersistentVolumeClaim; one replica).
*/}}
{{- define "gatehouse.databaseMode" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.database.existingSecret -}}
postgresql-external
{{- else if .root.Values.postgresql.enabled -}}
postgresql-bundled
{{- else -}}
sqlite
{{- end -}}
{{- end -}}

{{/* Name of the SQLite claim of a service. */}}
{{- define "gatehouse.sqliteClaimName" -}}
{{- $svc := index .root.Values .component -}}
{{- default (printf "%s-data" (include "gatehouse.componentName" .)) $svc.persistence.existingClaim -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: longer than DRAIN_DELAY + SHUTDOWN_TIMEOUT + flushing (the lifecycle in the README's Architecture section). */}}
{{- define "gatehouse.terminationGracePeriodSeconds" -}}
{{- $l := .Values.lifecycle -}}
{{- add $l.drainDelaySeconds $l.shutdownTimeoutSeconds $l.flushMarginSeconds -}}
{{- end -}}

{{/*
The OTLP endpoint the services export to: tracing.endpoint, else the bundled Jaeger, else "" (no exporter).
*/}}
{{- define "gatehouse.otlpEndpoint" -}}
{{- if .Values.tracing.endpoint -}}
{{- .Values.tracing.endpoint -}}
{{- else if .Values.jaeger.enabled -}}
{{- printf "http://%s:4317" (include "gatehouse.serviceHost" (dict "root" . "name" (include "gatehouse.componentName" (dict "root" . "component" "jaeger")))) -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.monitoringEnabled: "true" when an optional monitoring object is to be rendered.
Call with (dict "root" $ "enabled" <auto|true|false> "kind" "ServiceMonitor").
*/}}
{{- define "gatehouse.monitoringEnabled" -}}
{{- $e := toString .enabled -}}
{{- if eq $e "true" -}}
true
{{- else if and (eq $e "auto") (.root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind)) -}}
true
{{- end -}}
{{- end -}}

{{/* Secret names. */}}
{{- define "gatehouse.keysSecretName" -}}
{{- default (printf "%s-keys" (include "gatehouse.componentName" (dict "root" . "component" "auth"))) .Values.auth.keys.existingSecret -}}
{{- end -}}
{{- define "gatehouse.adminSecretName" -}}
{{- default (include "gatehouse.componentName" (dict "root" . "component" "bootstrap-admin")) .Values.bootstrapAdmin.existingSecret -}}
{{- end -}}

{{/* The kid written to the generated keys Secret as active-kid. */}}
{{- define "gatehouse.activeKeyId" -}}
{{- default (first .Values.auth.keys.ids) .Values.auth.keys.activeKeyId -}}
{{- end -}}

{{/*
gatehouse.memo: renders the named template once per `helm install/upgrade/template` run and returns the
same text on every later call, so a generated Secret and the checksum annotation of the pods that use
it see the same random values. The cache lives in a map inside .Values, which Helm shares between the
chart's templates during one render and never stores in the release.
Call with (list $ "cache-key" "template-name").
*/}}
{{- define "gatehouse.memo" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- if not (hasKey $root.Values "__gatehouseMemo") -}}
{{- $_ := set $root.Values "__gatehouseMemo" dict -}}
{{- end -}}
{{- $memo := index $root.Values "__gatehouseMemo" -}}
{{- if not (hasKey $memo $key) -}}
{{- $_ := set $memo $key (include (index . 2) $root) -}}
{{- end -}}
{{- index $memo $key -}}
{{- end -}}

{{/*
Data (base64) of the chart-generated signing-keys Secret: one Ed25519 PKCS#8 PEM per kid of
auth.keys.ids, kept from the live Secret when it already has that kid (never regenerated on upgrade),
plus active-kid. Kids no longer listed are dropped: that is the last step of a rotation.
*/}}
{{- define "gatehouse.keysSecretData" -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (include "gatehouse.keysSecretName" .)).data | default dict -}}
{{- $data := dict -}}
{{- range .Values.auth.keys.ids -}}
{{- $file := printf "%s.pem" . -}}
{{- if hasKey $existing $file -}}
{{- $_ := set $data $file (index $existing $file) -}}
{{- else -}}
{{- $pem := genPrivateKey "ed25519" -}}
{{- if not (hasPrefix "-----BEGIN PRIVATE KEY-----" $pem) -}}
{{- fail (printf "auth.keys: this Helm cannot generate Ed25519 keys (genPrivateKey said %q); use a newer Helm or create the keys yourself and set auth.keys.existingSecret" $pem) -}}
{{- end -}}
{{- $_ := set $data $file (b64enc $pem) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $data "active-kid" (include "gatehouse.activeKeyId" . | b64enc) -}}
{{- toYaml $data -}}
{{- end -}}

{{/* Data (base64) of the chart-generated bootstrap admin Secret; the password is kept across upgrades. */}}
{{- define "gatehouse.adminSecretData" -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (include "gatehouse.adminSecretName" .)).data | default dict -}}
{{- $password := index $existing "password" | default (randAlphaNum 24 | b64enc) -}}
{{- dict "password" $password | toYaml -}}
{{- end -}}

{{/*
Data (base64) of the bundled PostgreSQL Secret: the superuser's and each service role's password
(generated once, kept across upgrades) and each service's DATABASE_URL. Passwords are alphanumeric,
so they need no escaping in a URL.
*/}}
{{- define "gatehouse.postgresqlSecretData" -}}
{{- $name := include "gatehouse.componentName" (dict "root" . "component" "postgresql") -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace $name).data | default dict -}}
{{- $host := include "gatehouse.serviceHost" (dict "root" . "name" $name) -}}
{{- $data := dict -}}
{{- range $key := list "postgres-password" "user-password" "auth-password" -}}
{{- $_ := set $data $key (index $existing $key | default (randAlphaNum 32 | b64enc)) -}}
{{- end -}}
{{- range $svc := list "user" "auth" -}}
{{- $password := index $data (printf "%s-password" $svc) | b64dec -}}
{{- $url := printf "postgres://gatehouse_%s:%s@%s:5432/gatehouse_%s?sslmode=disable" $svc $password $host $svc -}}
{{- $_ := set $data (printf "%s-url" $svc) (b64enc $url) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* Checksum of an existing Secret's data as the cluster holds it now (stable "null" when absent or offline). */}}
{{- define "gatehouse.existingSecretChecksum" -}}
{{- (lookup "v1" "Secret" .root.Release.Namespace .name).data | toJson | sha256sum -}}
{{- end -}}

{{/* Annotations of chart-generated Secrets and claims that must outlive the release (keepOnUninstall). */}}
{{- define "gatehouse.keepAnnotation" -}}
{{- if .Values.keepOnUninstall -}}
helm.sh/resource-policy: keep
{{- end -}}
{{- end -}}

{{/* Pod-level securityContext of the Pod Security "restricted" profile. Call with (dict "uid" N). */}}
{{- define "gatehouse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level securityContext of the Pod Security "restricted" profile. */}}
{{- define "gatehouse.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "gatehouse.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
Topology spread constraints of a component: the values' list with this component's labelSelector and
matchLabelKeys [pod-template-hash] (so a rollout's old pods do not skew the new ones) filled in.
*/}}
{{- define "gatehouse.topologySpreadConstraints" -}}
{{- $svc := index .root.Values .component -}}
{{- $selector := include "gatehouse.selectorLabels" . | fromYaml -}}
{{- $out := list -}}
{{- range $svc.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- if not (hasKey $c "matchLabelKeys") -}}
{{- $_ := set $c "matchLabelKeys" (list "pod-template-hash") -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- with $out -}}
topologySpreadConstraints:
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/*
Init container that waits for the bundled PostgreSQL to accept connections (postgresql.waitForReady).
Uses the PostgreSQL image for its pg_isready; the service images have no shell.
*/}}
{{- define "gatehouse.waitForPostgresql" -}}
{{- $root := .root -}}
{{- if and (eq (include "gatehouse.databaseMode" .) "postgresql-bundled") $root.Values.postgresql.waitForReady -}}
initContainers:
  - name: wait-for-postgresql
    image: "{{ $root.Values.postgresql.image.repository }}:{{ $root.Values.postgresql.image.tag }}"
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command:
      - sh
      - -c
      - until pg_isready --quiet --host="$PGHOST" --port=5432 --timeout=3; do echo "waiting for $PGHOST:5432"; sleep 2; done
    env:
      # libpq looks up the OS user name unless PGUSER is set, and UID 65532 has none in this image.
      - name: PGUSER
        value: postgres
      - name: PGHOST
        value: {{ include "gatehouse.serviceHost" (dict "root" $root "name" (include "gatehouse.componentName" (dict "root" $root "component" "postgresql"))) | quote }}
    securityContext:
      {{- include "gatehouse.containerSecurityContext" . | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 16Mi
      limits:
        memory: 64Mi
{{- end -}}
{{- end -}}

{{/*
Checks the schema cannot express. Rendered by templates/validate.yaml, so `helm template`,
`helm lint` and `helm install --dry-run` all fail on them.
*/}}
{{- define "gatehouse.validate" -}}
{{- range $component := list "user" "auth" -}}
{{- $svc := index $.Values $component -}}
{{- $ctx := dict "root" $ "component" $component -}}
{{- if eq (include "gatehouse.databaseMode" $ctx) "sqlite" -}}
{{- if gt (int $svc.replicaCount) 1 -}}
{{- fail (printf "%s.replicaCount=%v: the %s service is on SQLite (no %s.database.existingSecret, postgresql.enabled=false), which allows exactly one replica: SQLite is a file on a ReadWriteOnce volume that one process may write. Use PostgreSQL for more replicas." $component $svc.replicaCount $component $component) -}}
{{- end -}}
{{- if $svc.autoscaling.enabled -}}
{{- fail (printf "%s.autoscaling.enabled=true: the %s service is on SQLite, which allows exactly one replica; autoscaling needs PostgreSQL (%s.database.existingSecret or postgresql.enabled)." $component $component $component) -}}
{{- end -}}
{{- end -}}
{{- if and $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is greater than maxReplicas (%v)" $component $svc.autoscaling.minReplicas $svc.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.auth.keys.existingSecret -}}
{{- if not .Values.auth.keys.ids -}}
{{- fail "auth.keys.ids: list at least one kid, or set auth.keys.existingSecret" -}}
{{- end -}}
{{- if and .Values.auth.keys.activeKeyId (not (has .Values.auth.keys.activeKeyId .Values.auth.keys.ids)) -}}
{{- fail (printf "auth.keys.activeKeyId=%q is not one of auth.keys.ids %v: the active key must be generated before it can sign" .Values.auth.keys.activeKeyId .Values.auth.keys.ids) -}}
{{- end -}}
{{- if ne (len .Values.auth.keys.ids) (len (uniq .Values.auth.keys.ids)) -}}
{{- fail (printf "auth.keys.ids %v: kids must be unique" .Values.auth.keys.ids) -}}
{{- end -}}
{{- end -}}
{{- range $path, $tag := dict "image.tag" .Values.image.tag "user.image.tag" .Values.user.image.tag "auth.image.tag" .Values.auth.image.tag "postgresql.image.tag" .Values.postgresql.image.tag "jaeger.image.tag" .Values.jaeger.image.tag -}}
{{- if eq (toString $tag) "latest" -}}
{{- fail (printf "%s=latest: pin a version (or a digest). `latest` is not reproducible, and Kubernetes pulls it with imagePullPolicy Always, which breaks images loaded into kind." $path) -}}
{{- end -}}
{{- end -}}
{{- if has "active-kid" .Values.auth.keys.ids -}}
{{- fail "auth.keys.ids: \"active-kid\" is the name of the file that selects the signing key, not a usable kid" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled .Values.user.database.existingSecret .Values.auth.database.existingSecret -}}
{{- fail "postgresql.enabled=true, but both services take their database from user.database.existingSecret and auth.database.existingSecret: the bundled PostgreSQL would run unused. Turn one off." -}}
{{- end -}}
{{- if and .Values.bootstrapAdmin.enabled (not .Values.bootstrapAdmin.email) -}}
{{- fail "bootstrapAdmin.enabled=true needs bootstrapAdmin.email" -}}
{{- end -}}
{{- if and (eq (include "gatehouse.tlsSource" .) "existing") (not (and .Values.tls.existingSecrets.user .Values.tls.existingSecrets.auth)) -}}
{{- fail "tls.source=existing needs tls.existingSecrets.user and tls.existingSecrets.auth: Secrets with tls.crt, tls.key and ca.crt (or tls.source=generated, or tls.enabled=false)" -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.tlsSource: where the services' certificates come from ("cert-manager", "generated",
"existing"), or "" when tls.enabled is false. `auto` picks cert-manager when the cluster serves it.
*/}}
{{- define "gatehouse.tlsSource" -}}
{{- $t := .Values.tls -}}
{{- if $t.enabled -}}
{{- if ne $t.source "auto" -}}
{{- $t.source -}}
{{- else if .Capabilities.APIVersions.Has "cert-manager.io/v1/Certificate" -}}
cert-manager
{{- else -}}
generated
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a service's TLS Secret (tls.crt, tls.key, ca.crt). Call with (dict "root" $ "component" "user"). */}}
{{- define "gatehouse.tlsSecretName" -}}
{{- $existing := index .root.Values.tls.existingSecrets .component -}}
{{- if and (eq (include "gatehouse.tlsSource" .root) "existing") $existing -}}
{{- $existing -}}
{{- else -}}
{{- printf "%s-tls" (include "gatehouse.componentName" .) -}}
{{- end -}}
{{- end -}}

{{/*
DNS names of a service's certificate, one per line: its Services (ClusterIP and headless) in every
form a client may dial, and localhost for `kubectl port-forward`. The Auth service's short Service
name doubles as its identity (SERVICE_PEER_NAMES of the User service).
*/}}
{{- define "gatehouse.tlsDNSNames" -}}
{{- $root := .root -}}
{{- range $suffix := list "" "-headless" }}
{{- $svc := printf "%s%s" (include "gatehouse.componentName" (dict "root" $root "component" $.component)) $suffix }}
- {{ $svc }}
- {{ $svc }}.{{ $root.Release.Namespace }}
- {{ $svc }}.{{ $root.Release.Namespace }}.svc
- {{ $svc }}.{{ $root.Release.Namespace }}.svc.{{ $root.Values.clusterDomain }}
{{- end }}
- localhost
{{- end -}}

{{/*
Data (base64) of the chart-generated TLS Secrets, as YAML {ca: {...}, user: {...}, auth: {...}}: a CA,
and a certificate per service signed by it, for server and client authentication. Each Secret found
in the cluster is kept as it is (like the signing keys), so upgrades neither change certificates nor
break connections; a missing one is generated (with the kept CA, when there is one).
*/}}
{{- define "gatehouse.tlsGeneratedData" -}}
{{- $ns := .Release.Namespace -}}
{{- $days := int .Values.tls.generated.validityDays -}}
{{- $caName := include "gatehouse.componentName" (dict "root" . "component" "ca") -}}
{{- $caData := (lookup "v1" "Secret" $ns $caName).data | default dict -}}
{{- $ca := dict -}}
{{- if and (hasKey $caData "tls.crt") (hasKey $caData "tls.key") -}}
{{- $ca = buildCustomCert (index $caData "tls.crt") (index $caData "tls.key") -}}
{{- else -}}
{{- $ca = genCA (printf "%s CA" (include "gatehouse.fullname" .)) (int .Values.tls.generated.caValidityDays) -}}
{{- $caData = dict "tls.crt" (b64enc $ca.Cert) "tls.key" (b64enc $ca.Key) -}}
{{- end -}}
{{- $out := dict "ca" $caData -}}
{{- range $component := list "user" "auth" -}}
{{- $ctx := dict "root" $ "component" $component -}}
{{- $existing := (lookup "v1" "Secret" $ns (include "gatehouse.tlsSecretName" $ctx)).data | default dict -}}
{{- if and (hasKey $existing "tls.crt") (hasKey $existing "tls.key") (hasKey $existing "ca.crt") -}}
{{- $_ := set $out $component $existing -}}
{{- else -}}
{{- $names := include "gatehouse.tlsDNSNames" $ctx | fromYamlArray -}}
{{- $cert := genSignedCert (first $names) (list "127.0.0.1") $names $days $ca -}}
{{- $_ := set $out $component (dict "tls.crt" (b64enc $cert.Cert) "tls.key" (b64enc $cert.Key) "ca.crt" (b64enc $ca.Cert)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Issuer of the services' Certificates: tls.certManager.issuerRef, else the chart's CA Issuer. */}}
{{- define "gatehouse.tlsIssuerRef" -}}
{{- with .Values.tls.certManager.issuerRef -}}
{{- toYaml . -}}
{{- else -}}
name: {{ include "gatehouse.componentName" (dict "root" . "component" "ca") }}
kind: Issuer
group: cert-manager.io
{{- end -}}
{{- end -}}

{{/* The TLS volume of a service pod (its Secret). Call with (dict "root" $ "component" "user"). */}}
{{- define "gatehouse.tlsVolume" -}}
{{- if include "gatehouse.tlsSource" .root }}
- name: tls
  secret:
    secretName: {{ include "gatehouse.tlsSecretName" . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "gatehouse.tlsMount" -}}
{{- if include "gatehouse.tlsSource" .root }}
- name: tls
  mountPath: /etc/gatehouse/tls
  readOnly: true
{{- end }}
{{- end -}}
