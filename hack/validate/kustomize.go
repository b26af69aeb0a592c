package validate

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// RenderKustomization builds a kustomization directory with kustomize's Go
// API and the defaults of `kubectl kustomize` / `kustomize build` (load
// restrictor RootOnly: nothing outside the kustomization's root may be read),
// then decodes every object strictly.
func RenderKustomization(dir string) ([]Object, []byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		return nil, nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	objs, err := DecodeStream("kustomize build "+dir, out)
	return objs, out, err
}
