using SafeTune.Onnx;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class ProbeScorerTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Features with a per-dimension offset and scale, so the standardisation matters.</summary>
    internal static float[][] Features(int n, int d, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, d).Select(j => (float)((rng.NextDouble() * 2 - 1) * (1 + j % 5) + j * 0.1)).ToArray())];
    }

    internal static Standardizer RandomStandardizer(int d, int seed)
    {
        var rng = new Random(seed);
        return new Standardizer([.. Enumerable.Range(0, d).Select(j => j * 0.1 + rng.NextDouble() * 0.1)], [.. Enumerable.Range(0, d).Select(j => 0.5 + (j % 5) * 0.4 + rng.NextDouble() * 0.1)]);
    }

    internal static LogisticRegression RandomLogistic(int d, int seed)
    {
        var rng = new Random(seed);
        return new LogisticRegression(RandomStandardizer(d, seed), [.. Enumerable.Range(0, d).Select(_ => (rng.NextDouble() * 2 - 1) / Math.Sqrt(d))], 0.3, 1e-3);
    }

    internal static MlpHead RandomMlp(int d, int h, int seed)
    {
        var rng = new Random(seed);
        float U(double a) => (float)((rng.NextDouble() * 2 - 1) * a);
        return new MlpHead(RandomStandardizer(d, seed),
            [.. Enumerable.Range(0, h * d).Select(_ => U(1 / Math.Sqrt(d)))], [.. Enumerable.Range(0, h).Select(_ => U(0.2))],
            [.. Enumerable.Range(0, 2 * h).Select(_ => U(1 / Math.Sqrt(h)))], [U(0.1), U(0.1)]);
    }

    [Theory]
    [InlineData(false, 384)]
    [InlineData(true, 384)]
    [InlineData(false, 37)]
    [InlineData(true, 37)]
    public void Folded_scorer_matches_the_double_precision_head(bool mlp, int d)
    {
        ProbeHead head = mlp ? RandomMlp(d, 64, 1) : RandomLogistic(d, 1);
        var scorer = head.CreateScorer();
        Assert.Equal(head.Kind, scorer.Kind);
        var x = Features(70, d, 2);
        var batch = new float[x.Length];
        scorer.Score(x.SelectMany(r => r).ToArray(), batch);
        for (int i = 0; i < x.Length; i++)
        {
            double expected = head.PredictProbability(x[i]);
            Assert.True(Math.Abs(expected - scorer.Score(x[i])) <= 1e-5, $"row {i}: {expected} vs {scorer.Score(x[i])}");
            Assert.True(Math.Abs(expected - batch[i]) <= 1e-5, $"row {i} in the batch: {expected} vs {batch[i]}");
            Assert.True(Math.Abs(head.PredictLogit(x[i]) - scorer.Logit(x[i])) <= 1e-4 * Math.Max(1, Math.Abs(head.PredictLogit(x[i]))));
        }
        Assert.Throws<UserInputException>(() => scorer.Score(new float[d + 1]));
    }

    [Fact]
    public void Mlp_probabilities_are_the_softmax_of_the_two_logits()
    {
        var head = RandomMlp(5, 7, 3);
        var x = Features(1, 5, 4)[0];
        var z = head.Standardizer.Transform(x);
        double[] logits = [head.B2[0], head.B2[1]];
        for (int k = 0; k < head.HiddenSize; k++)
        {
            double a = head.B1[k];
            for (int j = 0; j < 5; j++) a += head.W1[k * 5 + j] * z[j];
            a = Math.Max(a, 0);
            logits[0] += head.W2[k] * a;
            logits[1] += head.W2[head.HiddenSize + k] * a;
        }
        double softmax1 = Math.Exp(logits[1]) / (Math.Exp(logits[0]) + Math.Exp(logits[1]));
        Assert.Equal(softmax1, head.PredictProbability(x), 12);
    }

    [Fact]
    public void Probe_files_round_trip_both_heads()
    {
        foreach (ProbeHead head in new ProbeHead[] { RandomLogistic(12, 5), RandomMlp(12, 9, 6) })
        {
            var probe = new ProbeFile
            {
                ModelPath = "/m.onnx", ModelSha256 = new string('a', 64), Tokenizer = "vocab.txt", ChatTemplate = "chatml",
                Layers = [1, 2], LayerCount = 4, Pooling = ActivationPooling.LastToken, MaxLength = 64, Threshold = 0.27,
                Calibration = new ProbeCalibration(0.95, 0.96, 0.12, 50, 200), Head = head,
            };
            var path = _dir.File($"{head.Kind}.json");
            probe.Save(path);
            var back = ProbeFile.Load(path);
            Assert.Equal(head.Kind, back.Head.Kind);
            Assert.Equal(probe.Calibration, back.Calibration);
            Assert.Equal("chatml", back.ChatTemplate);
            Assert.Equal(4, back.LayerCount);
            Assert.Equal([1, 2], back.Layers);
            foreach (var row in Features(10, 12, 7)) Assert.Equal(head.PredictProbability(row), back.Head.PredictProbability(row));
        }
    }

    [Fact]
    public void Attention_probes_keep_their_query_and_damaged_ones_name_the_field()
    {
        var rng = new Random(4);
        float[] query = [.. Enumerable.Range(0, 12).Select(_ => (float)(rng.NextDouble() - 0.5))];
        var probe = new ProbeFile
        {
            ModelPath = "/m.onnx", ModelSha256 = new string('a', 64), Tokenizer = "vocab.txt", Layers = [1, 2], LayerCount = 4,
            Pooling = ActivationPooling.AttentionWeighted, AttentionQuery = query, Head = RandomMlp(12, 5, 2),
        };
        var path = _dir.File("attention.json");
        probe.Save(path);
        var back = ProbeFile.Load(path);
        Assert.Equal(ActivationPooling.AttentionWeighted, back.Pooling);
        Assert.Equal(query, back.AttentionQuery);

        var json = File.ReadAllText(path);
        File.WriteAllText(path, json.Replace("\"attentionQuery\":[", "\"attentionQuery\":[0.5,"));
        Assert.Contains("'attentionQuery' has 13 values", Assert.Throws<InvalidDataException>(() => ProbeFile.Load(path)).Message);
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["attentionQuery"] = null;
        File.WriteAllText(path, node.ToJsonString());
        Assert.Contains("'attentionQuery' is missing", Assert.Throws<InvalidDataException>(() => ProbeFile.Load(path)).Message);
        node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["pooling"] = "MeanTokensConcatLayers";
        File.WriteAllText(path, node.ToJsonString());
        Assert.Contains("pooling is MeanTokensConcatLayers", Assert.Throws<InvalidDataException>(() => ProbeFile.Load(path)).Message);
    }

    [Fact]
    public void First_format_logistic_files_still_load()
    {
        var path = _dir.File("old.json");
        File.WriteAllText(path, """
            {"format":"safetune-probe/1","model":{"path":"/m.onnx","sha256":"00"},"tokenizer":"vocab.txt","layers":null,
             "pooling":"MeanTokensThenLayers","maxLength":128,"head":"logistic","threshold":0.5,"lambda":0.001,
             "mean":[1,2],"std":[1,0.5],"weights":[0.5,-0.25],"bias":0.1}
            """);
        var probe = ProbeFile.Load(path);
        Assert.Equal(ProbeHeadKind.Logistic, probe.Head.Kind);
        Assert.Null(probe.ChatTemplate);
        Assert.Null(probe.LayerCount);
        Assert.Null(probe.Calibration);
        // logit = 0.1 + 0.5 * (3 - 1) / 1 - 0.25 * (3 - 2) / 0.5 = 0.6
        Assert.Equal(LogisticRegression.Sigmoid(0.6), probe.Head.PredictProbability([3f, 3f]), 12);
    }

    [Fact]
    public void Damaged_mlp_files_name_the_field()
    {
        var path = _dir.File("bad.json");
        new ProbeFile { ModelPath = "/m", ModelSha256 = "00", Tokenizer = "t", Head = RandomMlp(4, 3, 1) }.Save(path);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"shape\":[3,4]", "\"shape\":[3,5]"));
        var e = Assert.Throws<InvalidDataException>(() => ProbeFile.Load(path));
        Assert.Contains("w1", e.Message);
        Assert.Contains("bad.json", e.Message);
    }
}
