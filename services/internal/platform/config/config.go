package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
)

// Validator is implemented by configs that check cross-field rules after
// parsing.
type Validator interface {
	Validate() error
}

// Defaulter is implemented by configs whose defaults depend on other
// settings (https rather than http when TLS is on, say). Load calls
// Default after parsing and before Validate.
type Defaulter interface {
	Default()
}

// Load fills dst (a pointer to a struct with `env` tags) from environ, a
// list of KEY=VALUE strings as os.Environ returns. Fields keep their current
// value when the variable is unset and the tag has no envDefault, so callers
// may pre-set service-specific defaults.
func Load(dst any, environ []string) error {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if err := env.ParseWithOptions(dst, env.Options{Environment: vars}); err != nil {
		return describe(dst, vars, err)
	}
	if d, ok := dst.(Defaulter); ok {
		d.Default()
	}
	if v, ok := dst.(Validator); ok {
		if err := v.Validate(); err != nil {
			// errors.Join separates with newlines; keep the report on one line.
			return fmt.Errorf("config: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	return nil
}

// describe turns env's field-named errors into ones naming the variable and
// the offending value, which is what an operator reading a crash loop needs.
func describe(dst any, vars map[string]string, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	keys := fieldKeys(reflect.TypeOf(dst).Elem(), "")
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			key := keys[pe.Name]
			msgs = append(msgs, fmt.Sprintf("invalid %s=%q: %v", key, vars[key], pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
}

// fieldKeys maps struct field names to their environment variable names,
// following nested structs and envPrefix tags.
func fieldKeys(t reflect.Type, prefix string) map[string]string {
	keys := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Type.Kind() == reflect.Struct && tag == "" {
			for k, v := range fieldKeys(f.Type, prefix+f.Tag.Get("envPrefix")) {
				keys[k] = v
			}
			continue
		}
		if tag != "" {
			keys[f.Name] = prefix + tag
		}
	}
	return keys
}

// Secret is a string that never prints: use it for passwords and keys so a
// config dump or a stray %v cannot leak them.
type Secret string

// String masks the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "******"
}

// LogValue masks the value in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Minutes is a duration that also accepts a plain integer meaning minutes,
// the format of the first release's JWT_ACCESS_EXPIRY ("15"), besides Go
// durations ("15m", "1h30m").
type Minutes time.Duration

// UnmarshalText implements encoding.TextUnmarshaler for env parsing.
func (m *Minutes) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return fmt.Errorf("must be positive, got %d minutes", n)
		}
		*m = Minutes(time.Duration(n) * time.Minute)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want minutes (e.g. 15) or a Go duration (e.g. 15m): %w", err)
	}
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	*m = Minutes(d)
	return nil
}

// Duration returns m as a time.Duration.
func (m Minutes) Duration() time.Duration { return time.Duration(m) }

// String prints m as a Go duration.
func (m Minutes) String() string { return time.Duration(m).String() }

// Attrs lists the effective configuration as slog attributes keyed by
// variable name, masking Secret fields and passwords in URLs, so it can be
// logged at start-up.
func Attrs(cfg any) []any {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return attrs(v, "")
}

func attrs(v reflect.Value, prefix string) []any {
	var out []any
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Type.Kind() == reflect.Struct && tag == "" {
			out = append(out, attrs(fv, prefix+f.Tag.Get("envPrefix"))...)
			continue
		}
		if tag == "" || !f.IsExported() {
			continue
		}
		out = append(out, slog.String(prefix+tag, display(fv)))
	}
	return out
}

func display(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Secret:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case string:
		// Every string, not only URL-shaped ones: a key=value DSN or a
		// password in a query parameter is a string too.
		return redact.URL(x)
	default:
		return fmt.Sprint(x)
	}
}
