package api

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.20.1 object paths=./...
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.20.1 crd paths=./... output:crd:artifacts:config=crds
