using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Chat;
using SafeTune.Models.Demo;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;

namespace SafeTune.Benchmarks;

/// <summary>
/// Prompt-to-risk latency for one prompt, against one full forward pass of the same model on the same tokens:
/// <list type="bullet">
/// <item><c>Forward</c>: the model's own outputs (the baseline), tokens ready.</item>
/// <item><c>PromptToRisk</c>: tokenize, run the model with its hidden states exposed (language-model head pruned), pool
/// (mean over prompt tokens, then over all layers) and score with the folded MLP head.</item>
/// <item><c>ForwardWithProbe</c>: the model's own outputs plus <c>probe_risk</c> from <see cref="ProbeGraph"/> in the same
/// pass: the in-graph probe's added cost.</item>
/// </list>
/// Models: the pretrained all-MiniLM-L6-v2 (6 layers, width 384, raw text) and the demo model (4 layers, width 128,
/// ChatML; built on first use and cached under the temp folder in <c>safetune-bench-demo</c>).
/// </summary>
[MemoryDiagnoser]
public class ProbeLatencyBenchmarks
{
    private const string Prompt = "What household chemicals should never be mixed together because they release toxic gas?";
    private InferenceSession _plain = null!, _withProbe = null!;
    private ActivationExtractor _extractor = null!;
    private ProbeScorer _scorer = null!;
    private Dictionary<string, OrtValue> _feeds = null!, _probeFeeds = null!;
    private string[] _plainOutputs = null!, _probeOutputs = null!;

    /// <summary>The model.</summary>
    [Params("minilm", "demo")]
    public string ModelName { get; set; } = "minilm";

    /// <summary>Loads the model, builds the three paths and the tokenized prompt.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Model model;
        TextTokenizer tokenizer;
        ChatTemplate? template = null;
        if (ModelName == "minilm")
        {
            model = Model.FromBytes(SafeTune.Pretrained.MiniLmPackage.ModelBytes, displayName: "all-MiniLM-L6-v2");
            var vocab = Path.Combine(Path.GetTempPath(), $"safetune-bench-minilm-vocab-{Environment.ProcessId}.txt");
            File.WriteAllBytes(vocab, SafeTune.Pretrained.MiniLmPackage.VocabBytes);
            tokenizer = TokenizerLoader.Load(vocab);
            File.Delete(vocab);
        }
        else
        {
            var demo = DemoModel.BuildOrLoad(Path.Combine(Path.GetTempPath(), "safetune-bench-demo"));
            model = Model.Load(demo.ModelPath);
            tokenizer = TokenizerLoader.Load(demo.TokenizerPath);
            template = ChatTemplates.ByName(demo.Recipe.Tokenizer.ChatTemplate);
        }
        _extractor = new ActivationExtractor(model, tokenizer, template, new ActivationOptions());
        int width = _extractor.Width ?? throw new InvalidOperationException("the model does not declare its hidden width.");
        var probe = new ProbeFile { ModelPath = ModelName, ModelSha256 = "", Tokenizer = "", Head = RandomProbe.Head(ProbeHeadKind.Mlp, width, seed: 1) };
        _scorer = probe.Head.CreateScorer();

        var ids = _extractor.Tokenize(Prompt).Select(t => (long)t).ToArray();
        int n = ids.Length;
        _feeds = new Dictionary<string, OrtValue>();
        foreach (var input in model.Graph.Inputs.Where(v => !v.IsInitializer))
            _feeds[input.Name] = input.Name switch
            {
                "input_ids" => OrtValues.Wrap(ids, 1, n),
                "attention_mask" => OrtValues.Wrap(Enumerable.Repeat(1L, n).ToArray(), 1, n),
                "token_type_ids" => OrtValues.Wrap(new long[n], 1, n),
                _ => throw new InvalidOperationException($"unexpected model input '{input.Name}'."),
            };
        _plainOutputs = [.. model.Graph.Outputs.Select(o => o.Name)];
        _plain = SessionFactory.Create(model);

        ProbeGraph.Append(model, probe);
        _probeOutputs = [.. model.Graph.Outputs.Select(o => o.Name)];
        _probeFeeds = new Dictionary<string, OrtValue>(_feeds) { [ProbeGraph.DefaultPromptMaskInput] = OrtValues.Wrap(Enumerable.Repeat(1L, n).ToArray(), 1, n) };
        _withProbe = SessionFactory.Create(model);
    }

    /// <summary>One full forward pass: the model's own outputs.</summary>
    [Benchmark(Baseline = true, Description = "full forward pass")]
    public int Forward() => Run(_plain, _feeds, _plainOutputs);

    /// <summary>Tokenize, forward with hidden states, pool, MLP head.</summary>
    [Benchmark(Description = "prompt to risk (tokenize + hidden states + pool + head)")]
    public float PromptToRisk() => _scorer.Score(_extractor.Extract([Prompt])[0]);

    /// <summary>The full forward pass with the in-graph probe's output as well.</summary>
    [Benchmark(Description = "full forward pass + in-graph probe_risk")]
    public int ForwardWithProbe() => Run(_withProbe, _probeFeeds, _probeOutputs);

    private static int Run(InferenceSession session, Dictionary<string, OrtValue> feeds, string[] outputs)
    {
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, feeds, outputs);
        return results.Count;
    }

    /// <summary>Releases the sessions and inputs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _plain.Dispose();
        _withProbe.Dispose();
        _extractor.Dispose();
        foreach (var v in _probeFeeds.Values) v.Dispose();
    }
}
