using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using SafeTune.Models.Decoders;
using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Models.HuggingFace;
using SafeTune.Models.Tokenization;
using SafeTune.Runtime;
using Oga = Microsoft.ML.OnnxRuntimeGenAI;

namespace SafeTune.Benchmarks;

/// <summary>
/// Greedy generation, tokens per second, side by side in one process: ONNX Runtime GenAI (Microsoft.ML.OnnxRuntimeGenAI)
/// and SafeTune's <see cref="Generator"/>, on the same GenAI folder (the same decoder file), the same prompts, the
/// same number of new tokens (end-of-sequence ignored), the same ONNX Runtime thread count. The generated tokens must
/// be identical. Each engine loads, runs and is released in turn, so that a 0.5B model needs one copy in memory.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/SafeTune.Benchmarks -- genai-side-by-side demo|HF_DIR|GENAI_DIR
/// [--work DIR] [--new-tokens N] [--prompt-tokens P] [--runs R] [--threads T] [--batch B]</c>. With <c>--batch</c>, B prompts
/// of the same length are generated together by both engines (tokens per second counts every row). <c>demo</c> is the demo recipe's
/// decoder shape (random weights, the demo tokenizer); HF_DIR is a Hugging Face checkpoint (config.json + safetensors),
/// exported with its key/value cache; a GENAI_DIR (genai_config.json) is used as it is.
/// </remarks>
public static class GenAiSideBySide
{
    public static int Run(string[] args)
    {
        if (args.Length < 1) return Usage();
        string source = args[0];
        string work = Path.Combine(Path.GetTempPath(), "safetune-genai-bench");
        int newTokens = 64, promptTokens = 32, runs = 3, threads = 2, batch = 1;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--work": work = Next(); break;
                case "--new-tokens": newTokens = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--prompt-tokens": promptTokens = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--runs": runs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--batch": batch = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: return Usage();
            }
        }
        var folder = Prepare(source, work);
        if (folder != source) SetThreads(folder, threads); // a folder given as it is keeps its own session options
        int vocab = (int)(JsonNode.Parse(File.ReadAllText(Path.Combine(folder, GenAiFolder.ConfigFileName)))!["model"]!["vocab_size"]!.GetValue<int>());
        var rng = new Random(0);
        // Rows of the same length, so that neither engine pads.
        var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocab)).ToArray()).ToArray();
        var prompt = prompts[0];

        // SafeTune's generator, from the folder's decoder file.
        int[][] ours = [];
        var oursTimes = new List<double>();
        using (var generator = new Generator(SessionFactory.Create(Path.Combine(folder, GenAiFolder.ModelFileName), new SessionConfig { IntraOpThreads = threads })))
        {
            var options = new GenerationOptions { MaxNewTokens = newTokens };
            generator.Generate([prompt[..4]], options with { MaxNewTokens = 4 }); // warm-up
            for (int r = 0; r < runs; r++)
            {
                var clock = Stopwatch.StartNew();
                ours = [.. generator.Generate(prompts, options).Select(s => s.Tokens)];
                oursTimes.Add(clock.Elapsed.TotalSeconds);
            }
        }
        GC.Collect();

        int[][] theirs = [];
        var theirTimes = new List<double>();
        using (var model = new Oga.Model(folder))
        {
            int[][] Once(int[][] rows, int count)
            {
                int length = rows[0].Length;
                using var parameters = new Oga.GeneratorParams(model);
                parameters.SetSearchOption("batch_size", rows.Length);
                parameters.SetSearchOption("max_length", length + count);
                parameters.SetSearchOption("min_length", length + count); // end-of-sequence ignored, as above
                using var g = new Oga.Generator(model, parameters);
                g.AppendTokens(rows.SelectMany(r => r).ToArray()); // batch x length, row after row
                while (!g.IsDone()) g.GenerateNextToken();
                return [.. Enumerable.Range(0, rows.Length).Select(i => g.GetSequence((ulong)i).ToArray()[length..])];
            }
            Once([prompt[..4]], 4); // warm-up
            for (int r = 0; r < runs; r++)
            {
                var clock = Stopwatch.StartNew();
                theirs = Once(prompts, newTokens);
                theirTimes.Add(clock.Elapsed.TotalSeconds);
            }
        }

        bool same = ours.Length == theirs.Length && ours.Zip(theirs).All(p => p.First.SequenceEqual(p.Second));
        double oursRate = (double)batch * newTokens / Median(oursTimes), theirRate = (double)batch * newTokens / Median(theirTimes);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(source.TrimEnd('/'))}: prompt {promptTokens} tokens, {newTokens} new tokens, greedy, batch {batch}, {threads} threads, median of {runs}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  onnxruntime-genai 0.20.0  {theirRate,8:F1} tokens/s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  SafeTune Generator        {oursRate,8:F1} tokens/s"));
        Console.WriteLine($"  tokens identical: {(same ? "yes" : "NO")}");
        return same ? 0 : 1;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The GenAI folder to measure: <paramref name="source"/> itself, or one written under <paramref name="work"/>.</summary>
    private static string Prepare(string source, string work)
    {
        if (File.Exists(Path.Combine(source, GenAiFolder.ConfigFileName))) return source;
        Directory.CreateDirectory(work);
        var tokenizerDir = Path.Combine(work, "tokenizer");
        if (!File.Exists(Path.Combine(tokenizerDir, "tokenizer.json")))
        {
            Directory.CreateDirectory(tokenizerDir);
            var corpus = DemoData.Train(DemoRecipe.Default.Data.Seed).SelectMany(e => new[] { e.Prompt, e.Response });
            DemoTokenizer.Write(tokenizerDir, DemoTokenizer.LearnMerges(corpus, DemoRecipe.Default.Tokenizer.Merges));
        }
        var tokenizer = Path.Combine(tokenizerDir, "tokenizer.json");
        var target = Path.Combine(work, source == "demo" ? "demo-genai" : Path.GetFileName(source.TrimEnd('/')) + "-genai");
        if (File.Exists(Path.Combine(target, GenAiFolder.ConfigFileName))) return target;
        var model = source == "demo"
            ? LlamaGraph.Build(DemoRecipe.Default.LlamaConfig(TokenizerLoader.Load(tokenizer).VocabularySize), seed: 0, options: DecoderGraphOptions.WithKvCache)
            : HfExporter.Export(HfCheckpoint.Load(source), DecoderGraphOptions.WithKvCache);
        // The benchmark feeds random ids; the tokenizer only supplies GenAI's end-of-sequence and padding ids.
        GenAiFolder.Write(model, tokenizer, target, new GenAiFolderOptions { ContextLength = 4096 });
        return target;
    }

    /// <summary>Gives GenAI the same intra-op thread count as SafeTune's session.</summary>
    private static void SetThreads(string folder, int threads)
    {
        var path = Path.Combine(folder, GenAiFolder.ConfigFileName);
        var config = JsonNode.Parse(File.ReadAllText(path))!;
        config["model"]!["decoder"]!["session_options"]!["intra_op_num_threads"] = threads;
        File.WriteAllText(path, config.ToJsonString());
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: genai-side-by-side demo|HF_DIR|GENAI_DIR [--work DIR] [--new-tokens N] [--prompt-tokens P] [--runs R] [--threads T] [--batch B]");
        return 2;
    }
}
