using SafeTune.Models.Chat;
using SafeTune.Models.Decoders;
using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;

namespace SafeTune.TestSupport;

/// <summary>
/// A small real chat setup for fast tests: the demo's byte-level BPE tokenizer learned with few merges from the demo
/// training text (ChatML special tokens), and tiny Llama-like decoders with random weights sized to it.
/// </summary>
public sealed class TinyChat : IDisposable
{
    private readonly TempDir _dir = new();

    public TinyChat()
    {
        var corpus = DemoData.Train(DemoRecipe.Default.Data.Seed).SelectMany(e => new[] { e.Prompt, e.Response });
        TokenizerPath = DemoTokenizer.Write(_dir.Path, DemoTokenizer.LearnMerges(corpus, 96));
        Tokenizer = TokenizerLoader.Load(TokenizerPath);
    }

    public string TokenizerPath { get; }

    public TextTokenizer Tokenizer { get; }

    public ChatTemplate Template => ChatTemplates.ChatMl;

    public string Folder => _dir.Path;

    /// <summary>A 1-layer decoder with random weights for this tokenizer's vocabulary (plus <paramref name="extraRows"/>).</summary>
    public LlamaConfig Config(int extraRows = 0) => new()
    {
        VocabSize = Tokenizer.VocabularySize + extraRows, HiddenSize = 32, Layers = 1, Heads = 2, KeyValueHeads = 1, IntermediateSize = 64,
        TieWordEmbeddings = true,
    };

    public Model Plain(int extraRows = 0, int seed = 3) => LlamaGraph.Build(Config(extraRows), seed: seed);

    public Model Cached(int extraRows = 0, int seed = 3) => LlamaGraph.Build(Config(extraRows), seed: seed, options: DecoderGraphOptions.WithKvCache);

    public string File(string name) => _dir.File(name);

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// A demo-model cache holding the tiny chat model in place of the trained demo model: the files and the manifest
/// (<c>demo.json</c>, recipe hash of <see cref="DemoRecipe.Default"/>) that <see cref="DemoModel.BuildOrLoad"/> loads
/// without training, so commands that name the demo model can be tested in seconds.
/// </summary>
public static class DemoCacheStandIn
{
    /// <summary>Writes the stand-in under the cache root <paramref name="root"/> and returns its folder (<see cref="DemoModel.CacheFolder"/>).</summary>
    public static string Write(string root, TinyChat chat)
    {
        var dir = DemoModel.CacheFolder(root);
        Directory.CreateDirectory(dir);
        var source = Path.GetDirectoryName(chat.TokenizerPath)!;
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
            File.Copy(Path.Combine(source, name), Path.Combine(dir, name), overwrite: true);
        chat.Plain().Save(Path.Combine(dir, "demo.onnx"));
        chat.Cached().Save(Path.Combine(dir, "demo-kv.onnx"));
        File.WriteAllText(Path.Combine(dir, "demo.json"), System.Text.Json.JsonSerializer.Serialize(new
        {
            RecipeHash = DemoRecipe.Default.Hash(), VocabSize = chat.Tokenizer.VocabularySize, TrainingSeconds = 0.0, FinalLoss = 0.0,
        }));
        return dir;
    }
}
