using SafeTune.Onnx;

namespace SafeTune.Data.Public;

/// <summary>
/// A public pretrained model in the Hugging Face layout (<c>config.json</c>, <c>model.safetensors</c>, <c>tokenizer.json</c>...):
/// a folder of files, each registered with its size and SHA-256 like a public data set, so that a model folder is found,
/// checked and fetched by <see cref="PublicDataStore"/> the way the data sets are.
/// </summary>
/// <param name="Name">The model's name, also the name of its folder under a mirror or the cache.</param>
/// <param name="Description">What it is, in a few words.</param>
/// <param name="Licence">Its licence, as published.</param>
/// <param name="Files">Its files, each a <see cref="PublicDataSet"/> whose <see cref="PublicDataSet.File"/> is <c>NAME/FILE</c>.</param>
public sealed record PublicModel(string Name, string Description, string Licence, IReadOnlyList<PublicDataSet> Files)
{
    /// <summary>The model's folder under <paramref name="folder"/> (a mirror or the cache).</summary>
    public string FolderUnder(string folder) => Path.Combine(folder, Name);
}

/// <summary>
/// The registry of the public pretrained models SafeTune's tests and examples read. They live under a model mirror
/// (<see cref="PublicDataStore.ModelMirrorVariable"/>, a folder or an http(s) URL laid out as <c>NAME/FILE</c>) or in the
/// model cache (<see cref="PublicDataStore.DefaultModelCacheDirectory"/>).
/// </summary>
public static class PublicModels
{
    private const string TinyLlamas = "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/";

    private const string Stories260kOrigin =
        "converted to the Hugging Face layout from llama2.c's stories260K.bin and tok512.bin, published at " + TinyLlamas
        + " (q/k rows permuted from interleaved RoPE to rotate-half as llama2.c's export.py does, fp32, tokenizer.json rebuilt from tok512.bin); "
        + "no public file holds the converted folder as such";

    /// <summary>Every registered model, in a fixed order.</summary>
    public static IReadOnlyList<PublicModel> Models { get; } =
    [
        Model("stories260k", "llama2.c's stories260K: a trained Llama (5 layers, width 64, vocabulary 512) on TinyStories, base model",
            "MIT (karpathy/llama2.c)", Stories260kOrigin,
            ("config.json", "10f8d9f7bc7dcf4c1b6a484761203838ad167dc9e2e8aa481724d74735975a55", 687),
            ("generation_config.json", "a128c764dc1cf1f3c0033e040d6f6dfe4b631ec751a43557de32a809e77c93ed", 140),
            ("model.safetensors", "407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd", 1044992),
            ("special_tokens_map.json", "d5e16f534da13c96e591eb76ee3d734a84de46c4097259af187547614e5eaf2c", 71),
            ("tokenizer.json", "dcf6295d6dd73e048c4b21edabb9720e12326e49d9ffcbb6f3c0b097cbc68372", 12301),
            ("tokenizer_config.json", "a25ffb55b747a79fa549b363f00da78ba8c91998ba0309a2b5556b1abf949648", 827)),
    ];

    /// <summary>The model called <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="UserInputException">No model has that name; the message lists the names.</exception>
    public static PublicModel Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Models.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new UserInputException($"no public model is called '{name}'; the models are {string.Join(", ", Models.Select(m => m.Name))}");
    }

    /// <summary>
    /// The local folder of <paramref name="model"/>, each file checked against its SHA-256 and fetched into the cache first
    /// when needed: the folder under a mirror folder, else under the cache.
    /// </summary>
    /// <exception cref="PublicDataException">A file cannot be had; the message names the model, the file and the variable to set.</exception>
    public static string Resolve(PublicModel model, PublicDataStore store, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(store);
        foreach (var file in model.Files) store.Resolve(file, cancellation);
        return model.FolderUnder(store.DataDirectory);
    }

    /// <summary>The local folder of the model called <paramref name="name"/>, with the store <see cref="PublicDataStore.Models"/> gives.</summary>
    /// <exception cref="PublicDataException">A file cannot be had.</exception>
    public static string Resolve(string name)
    {
        var model = Find(name);
        using var store = PublicDataStore.Models;
        return Resolve(model, store);
    }

    private static PublicModel Model(string name, string description, string licence, string origin, params (string File, string Sha256, long Bytes)[] files) =>
        new(name, description, licence,
            [.. files.Select(f => new PublicDataSet(name, name + "/" + f.File, $"{name}: {f.File}", licence, [], PublicDataTransform.None, f.Sha256, f.Bytes, origin))]);
}
