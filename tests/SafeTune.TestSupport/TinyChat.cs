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
