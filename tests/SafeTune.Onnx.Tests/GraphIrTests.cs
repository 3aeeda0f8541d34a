namespace SafeTune.Onnx.Tests;

public class GraphIrTests
{
    [Fact]
    public void AddInitializerUnique_takes_a_free_name_each_time()
    {
        var g = new Graph();
        var first = g.AddInitializerUnique("w", TensorData.Vector("ignored", 1f));
        var second = g.AddInitializerUnique("w", TensorData.Vector("ignored", 2f));
        Assert.NotEqual(first.Name, second.Name);
        Assert.StartsWith("w", first.Name);
        Assert.Same(first, g.FindInitializer(first.Name));
        Assert.Same(second, g.FindInitializer(second.Name));
        Assert.Equal(2f, second.Initializer!.AsSpan<float>()[0]);
    }

    [Fact]
    public void RemoveUnusedNodes_drops_branches_nothing_reads()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 4);
        var dead = b.Neg(b.Exp(x));
        b.Output(b.Tanh(x), "y");
        Assert.Equal(2, b.Graph.RemoveUnusedNodes());
        Assert.Single(b.Graph.Nodes);
        Assert.Null(b.Graph.FindValue(dead.Name));
    }

    [Fact]
    public void Values_know_their_producer_and_consumers()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 2, 3);
        var e = b.Exp(x);
        var s = b.Add(e, e);
        var t = b.Tanh(e);
        b.Output(b.Mul(s, t), "y");

        Assert.Null(x.Producer);
        Assert.Equal("Exp", e.Producer!.OpType);
        Assert.Equal(3, e.Uses.Count); // Add reads it twice, Tanh once
        Assert.Equal(2, e.Consumers.Count());
        Assert.Contains(new Use(s.Producer!, 0), e.Uses);
        Assert.Contains(new Use(s.Producer!, 1), e.Uses);
    }

    [Fact]
    public void SetInput_ReplaceAllUses_and_RemoveNode_keep_use_lists_right()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 4);
        var a = b.Exp(x);
        var c = b.Neg(x);
        var y = b.Output(b.Add(a, a), "y");
        var add = y.Producer!;

        add.SetInput(1, c);
        Assert.Single(a.Uses);
        Assert.Single(c.Uses);

        b.Graph.ReplaceAllUses(a, c);
        Assert.Empty(a.Uses);
        Assert.Equal(2, c.Uses.Count);

        b.Graph.RemoveNode(a.Producer!);
        Assert.DoesNotContain(b.Graph.Nodes, n => n.OpType == "Exp");
        Assert.Single(x.Uses); // only Neg reads x now
        Assert.Throws<InvalidOperationException>(() => b.Graph.RemoveNode(c.Producer!));
    }

    [Fact]
    public void Topological_order_fixes_shuffled_nodes_and_names_a_cycle()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 4);
        var a = b.Exp(x);
        var c = b.Neg(a);
        b.Output(b.Add(c, a), "y");
        var nodes = b.Graph.NodesList;
        nodes.Reverse();
        var order = b.Graph.TopologicalOrder();
        Assert.Equal(["Exp", "Neg", "Add"], order.Select(n => n.OpType));

        // Close a loop: Exp now reads the Add's output.
        a.Producer!.SetInput(0, b.Graph.GetValue("y"));
        var e = Assert.Throws<OnnxFormatException>(() => b.Graph.TopologicalOrder());
        Assert.Contains("cycle", e.Message);
    }

    [Fact]
    public void Name_authority_hands_out_unique_names()
    {
        var g = new Graph();
        var v1 = g.CreateValue("h");
        var v2 = g.CreateValue("h");
        var v3 = g.CreateValue("h");
        Assert.Equal(["h", "h_1", "h_2"], new[] { v1.Name, v2.Name, v3.Name });
        Assert.Throws<OnnxFormatException>(() => g.CreateValueExact("h_1"));
        g.RenameValue(v1, "renamed");
        Assert.Same(v1, g.FindValue("renamed"));
        Assert.Null(g.FindValue("h"));
    }

    [Fact]
    public void Builder_names_nodes_hierarchically()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 2, 2);
        Value y;
        using (b.Scope("model"))
        using (b.Scope("layers.3"))
        using (b.Scope("attn"))
        {
            y = b.MatMul(x, x);
            y = b.MatMul(y, x);
        }
        Assert.Equal("/model/layers.3/attn/MatMul", b.Graph.Nodes[0].Name);
        Assert.Equal("/model/layers.3/attn/MatMul_1", b.Graph.Nodes[1].Name);
        Assert.Equal("/model/layers.3/attn/MatMul_1_output_0", y.Name);
    }

    [Theory]
    [InlineData(11, "attribute")]
    [InlineData(13, "input")]
    public void Builder_emits_ops_valid_at_the_opset(long opset, string axesAs)
    {
        var b = GraphBuilder.ForNewModel(opset);
        var x = b.Input("x", ElementType.Float, 2, 3);
        var sum = b.ReduceSum(x, [1]);
        var unsq = b.Unsqueeze(x, 0);
        var split = b.Split(x, 1, 1, 2);
        var mean = b.ReduceMean(x, [1]);
        bool asInput = axesAs == "input";
        Assert.Equal(asInput, sum.Producer!.Inputs.Count == 2);
        Assert.Equal(!asInput, sum.Producer.Attributes.ContainsKey("axes"));
        Assert.Equal(asInput, unsq.Producer!.Inputs.Count == 2);
        Assert.Equal(asInput, split[0].Producer!.Inputs.Count == 2);
        // ReduceMean takes axes as an input only from opset 18.
        Assert.True(mean.Producer!.Attributes.ContainsKey("axes"));
    }

    [Fact]
    public void Subgraphs_read_outer_values_and_survive_a_round_trip()
    {
        var b = GraphBuilder.ForNewModel();
        var cond = b.Input("cond", ElementType.Bool);
        var x = b.Input("x", ElementType.Float, 3);
        var thenG = b.Graph.CreateSubgraph("then");
        var thenOut = new GraphBuilder(thenG, 17).Exp(x);
        thenG.AddOutput(thenOut);
        var elseG = b.Graph.CreateSubgraph("else");
        var elseOut = new GraphBuilder(elseG, 17).Neg(x);
        elseG.AddOutput(elseOut);
        var node = b.NewNode("If", [cond], 1, [Attribute.Of("then_branch", thenG), Attribute.Of("else_branch", elseG)]);
        b.Output(node.Outputs[0], "y");

        Assert.Contains(x.Consumers, n => n.Graph == thenG);
        Assert.Contains(x, Graph.NodeReads(node));

        var reloaded = Model.FromBytes(b.Model!.ToBytes());
        var ifNode = reloaded.Graph.Nodes.Single(n => n.OpType == "If");
        var sub = ifNode.Attributes["then_branch"].Graph!;
        Assert.Equal("Exp", sub.Nodes.Single().OpType);
        Assert.Same(reloaded.Graph.GetValue("x"), sub.Nodes.Single().Inputs[0]);
        Assert.Equal(["If", "Exp", "Neg"], reloaded.Graph.AllNodes().Select(n => n.OpType));
    }
}
