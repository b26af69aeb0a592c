package apidesc

import (
	_ "embed"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is a google.protobuf.FileDescriptorSet of every file of
// the module and its imports, with source info:
// `buf build --as-file-descriptor-set -o apidesc/descriptors.binpb`.
//
//go:embed descriptors.binpb
var descriptorSet []byte

var files = sync.OnceValues(func() (*protoregistry.Files, error) {
	set, err := fileDescriptorSet()
	if err != nil {
		return nil, err
	}
	f, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("apidesc: descriptors.binpb: %w", err)
	}
	return f, nil
})

// Files returns the contracts' files, with their imports and source info,
// built once. It panics if the embedded set is broken, which the package's
// tests rule out for every build that passes them.
func Files() *protoregistry.Files {
	f, err := files()
	if err != nil {
		panic(err)
	}
	return f
}

// fileDescriptorSet decodes the embedded set.
func fileDescriptorSet() (*descriptorpb.FileDescriptorSet, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptorSet, &set); err != nil {
		return nil, fmt.Errorf("apidesc: descriptors.binpb: %w", err)
	}
	return &set, nil
}
