package apidesc

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// contracts are the files this package exists for, with the descriptors
// the generated code compiled in.
var contracts = []protoreflect.FileDescriptor{
	userv1.File_user_v1_user_proto,
	authv1.File_auth_v1_auth_proto,
}

// TestMatchesGeneratedCode fails when descriptors.binpb and the generated
// code come from different .proto files (one regenerated, not the other):
// reflection would then describe a contract the server does not serve.
func TestMatchesGeneratedCode(t *testing.T) {
	for _, compiled := range contracts {
		embedded, err := Files().FindFileByPath(compiled.Path())
		if err != nil {
			t.Errorf("%s: not in descriptors.binpb: %v", compiled.Path(), err)
			continue
		}
		want := protodesc.ToFileDescriptorProto(compiled)
		got := protodesc.ToFileDescriptorProto(embedded)
		got.SourceCodeInfo = nil
		if !proto.Equal(got, want) {
			t.Errorf("%s: descriptors.binpb differs from the generated code; run `make proto`", compiled.Path())
		}
		if embedded.SourceLocations().Len() == 0 {
			t.Errorf("%s: descriptors.binpb has no source info", compiled.Path())
		}
	}
}

// statusCodeNames are the canonical names of the gRPC status codes
// (google.rpc.Code), OK excepted.
func statusCodeNames() []string {
	var names []string
	for _, n := range code.Code_name {
		if n != "OK" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// TestEverythingDocumented walks every service, method, message, field,
// enum and enum value of the contracts. Each must have a leading comment.
// Each method's comment must also document its errors: it must contain
// "Errors:" followed, somewhere after it, by at least one status code
// name as a whole word in its canonical spelling (INVALID_ARGUMENT,
// NOT_FOUND, UNAUTHENTICATED, CANCELLED, ...; OK does not count).
func TestEverythingDocumented(t *testing.T) {
	codeWord := regexp.MustCompile(`\b(` + strings.Join(statusCodeNames(), "|") + `)\b`)
	for _, compiled := range contracts {
		fd, err := Files().FindFileByPath(compiled.Path())
		if err != nil {
			t.Fatalf("%s: not in descriptors.binpb: %v", compiled.Path(), err)
		}
		locs := fd.SourceLocations()
		comment := func(d protoreflect.Descriptor) string {
			return strings.TrimSpace(locs.ByDescriptor(d).LeadingComments)
		}
		var walked int
		check := func(d protoreflect.Descriptor) {
			walked++
			if comment(d) == "" {
				t.Errorf("%s: %s has no leading comment", fd.Path(), d.FullName())
			}
		}
		walkEnums := func(es protoreflect.EnumDescriptors) {
			for i := range es.Len() {
				e := es.Get(i)
				check(e)
				for j := range e.Values().Len() {
					check(e.Values().Get(j))
				}
			}
		}
		var walkMessages func(protoreflect.MessageDescriptors)
		walkMessages = func(ms protoreflect.MessageDescriptors) {
			for i := range ms.Len() {
				m := ms.Get(i)
				check(m)
				for j := range m.Fields().Len() {
					check(m.Fields().Get(j))
				}
				walkEnums(m.Enums())
				walkMessages(m.Messages())
			}
		}
		walkMessages(fd.Messages())
		walkEnums(fd.Enums())
		for i := range fd.Services().Len() {
			s := fd.Services().Get(i)
			check(s)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				check(m)
				c := comment(m)
				_, errs, ok := strings.Cut(c, "Errors:")
				switch {
				case !ok:
					t.Errorf("%s: %s: comment has no \"Errors:\" paragraph", fd.Path(), m.FullName())
				case !codeWord.MatchString(errs):
					t.Errorf("%s: %s: \"Errors:\" names no status code (one of %s)", fd.Path(), m.FullName(), strings.Join(statusCodeNames(), ", "))
				}
			}
		}
		if fd.Services().Len() == 0 || walked < 10 {
			t.Errorf("%s: walked only %d descriptors; is the file empty?", fd.Path(), walked)
		}
	}
}
