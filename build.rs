fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/util/ldouble.c");
    cc::Build::new()
        .file("src/util/ldouble.c")
        .opt_level(2)
        .warnings(true)
        .compile("tessera_ldouble");
}
